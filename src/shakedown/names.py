"""File and directory names every layer agrees on (layer 0, imports nothing): the topology
file looked for by default and the state directory beside it. The layout inside the state
directory is the store's (``store.py``). Also the rule for environment names, which become
directory names."""

DEFAULT_FILE = "shakedown.toml"
DEFAULT_STATE_DIR = ".shakedown"

ENV_NAME_RULE = ("1-64 characters: letters, digits, '.', '_' and '-', starting with a letter or "
                 "digit")
"""An environment name is a directory name (``envs/NAME``) and the start of its id."""


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment, or None when it can (no regex import: the
    CLI's read-only commands load this module)."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not 1 <= len(name) <= 64:
        return f"{len(name)} characters ({ENV_NAME_RULE})"
    if not name[0].isascii() or not name[0].isalnum() or not set(name) <= allowed:
        return f"does not follow the rule ({ENV_NAME_RULE})"
    return None
