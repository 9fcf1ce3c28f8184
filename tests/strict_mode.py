"""Strict mode for every test item of the repository: under ``shakedown_strict`` (set in
pyproject.toml, so the README's test command is strict whatever the environment variables),
``--shakedown-strict`` or ``CI=true``, a skip decided at run time (``pytest.skip()``,
``pytest.importorskip()``, a fixture that cannot get what it needs) fails the test with its
reason: on this project's machines a missing server is an error, never a skip. Skips written as
markers (``@pytest.mark.skip``, ``skipif``) stay skips; they are decisions, not accidents.
Loaded by the repository-root conftest.py (``-p strict_mode`` elsewhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _pytest.skipping import evaluate_skip_marks  # the markers' own rule

from shakedown.pytest_plugin._options import strict_mode


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report: pytest.TestReport = yield
    if (report.skipped and call.excinfo is not None and not hasattr(report, "wasxfail")
            and isinstance(call.excinfo.value, pytest.skip.Exception)
            and not _skipped_by_marker(item, call) and strict_mode(item.config)):
        reason = getattr(call.excinfo.value, "msg", None) or str(call.excinfo.value)
        report.outcome = "failed"
        report.longrepr = (f"strict mode: a test that cannot run is a failure, not a skip: "
                           f"{reason}\n(shakedown_strict is on: install what is missing, e.g. "
                           "with `bash scripts/bootstrap.sh`)")
    return report


def _skipped_by_marker(item: pytest.Item, call: pytest.CallInfo[None]) -> bool:
    """The skip came from a ``skip`` / ``skipif`` marker whose condition holds (pytest raises
    those in setup, before any fixture runs)."""
    if call.when != "setup" or (not any(item.iter_markers("skip")) and not any(
            item.iter_markers("skipif"))):
        return False
    return evaluate_skip_marks(item) is not None
