"""Rules for every test item of the repository (tests/ and examples/, and any test added later):
the leak guard (tests/leak_guard.py) checks after each item that nothing it started is left,
and strict mode (tests/strict_mode.py) turns a runtime skip into a failure. pytester is here so
that any test may run pytest in a subprocess."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "tests"))

pytest_plugins = ["pytester", "leak_guard", "strict_mode"]
