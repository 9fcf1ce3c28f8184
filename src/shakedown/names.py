"""File and directory names every layer agrees on (layer 0, imports nothing): the topology
file looked for by default and the state directory beside it. The layout inside the state
directory is the store's (``store.py``)."""

DEFAULT_FILE = "shakedown.toml"
DEFAULT_STATE_DIR = ".shakedown"
