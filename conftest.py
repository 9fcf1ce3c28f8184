"""Rules for every test item of the repository (tests/ and examples/, and any test added later):
the leak guard (tests/leak_guard.py) checks after each item that nothing it started is left,
and strict mode (tests/strict_mode.py) turns a runtime skip into a failure. pytester is here so
that any test may run pytest in a subprocess."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "tests"))

pytest_plugins = ["pytester", "leak_guard", "strict_mode"]

_RUN_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID",
                  "SHAKEDOWN_RUN_ID")


@pytest.fixture(scope="session", autouse=True)
def _own_runs_for_subprocesses() -> Iterator[None]:
    """A pytest run that a test starts (pytester, a subprocess) is a run of its own, also when
    this suite runs under pytest-xdist: it must not inherit this worker's identity (the plugin
    reads PYTEST_XDIST_WORKER to tell a worker) nor its run id. Put back before the session
    ends, when the plugin reads them again."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _RUN_VARIABLES:
            patch.delenv(name, raising=False)
        yield
