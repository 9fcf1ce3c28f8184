"""Command-line and ini options of the plugin, and the settings derived from them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("shakedown", "shakedown: real infrastructure for integration tests")
    group.addoption("--shakedown-file", metavar="FILE",
                    help="Topology file (default: the nearest shakedown.toml above each test).")
    group.addoption("--shakedown-keep", action="store_true",
                    help="Keep environments running, with their logs, after the run.")
    group.addoption("--shakedown-reuse", action="store_true",
                    help="Reuse a running environment of the same topology between runs "
                         "(started by an earlier --shakedown-reuse run or `shakedown up "
                         "--detach --name pytest-reuse`); start one and leave it if none.")
    group.addoption("--shakedown-strict", action="store_true",
                    help="A test that cannot run (missing binary) is an error, not a skip. "
                         "On by default when CI=true.")
    parser.addini("shakedown_file", "Topology file for shakedown_env.", default="")
    parser.addini("shakedown_strict", "Like --shakedown-strict.", type="bool", default=False)
    # Reporting (_reporting.py): regressions against .shakedown/history.db, report.html.
    group.addoption("--shakedown-fail-on-regression", action="store_true",
                    help="Fail the run when a measurement regressed (worse than the median of "
                         "the last N comparable runs by more than the threshold).")
    group.addoption("--shakedown-regression-threshold", metavar="PERCENT",
                    help="Regression threshold in percent (default 25, ini "
                         "shakedown_regression_threshold).")
    group.addoption("--shakedown-regression-runs", metavar="N", type=int,
                    help="Compare with the median of the last N comparable runs (default 5, "
                         "ini shakedown_regression_runs).")
    parser.addini("shakedown_fail_on_regression", "Like --shakedown-fail-on-regression.",
                  type="bool", default=False)
    parser.addini("shakedown_regression_threshold", "Regression threshold, percent.",
                  default="25%")
    parser.addini("shakedown_regression_runs", "Runs whose median a measurement is compared "
                  "with.", default="5")
    parser.addini("shakedown_regression_min_delta", "Changes smaller than this duration are "
                  "never regressions (noise).", default="5ms")
    parser.addini("shakedown_html_report", "Write runs/RUN_ID/report.html.", type="bool",
                  default=True)


@dataclass(frozen=True)
class Settings:
    file: Path | None
    keep: bool
    reuse: bool
    strict: bool
    rootdir: Path

    @property
    def state_root(self) -> Path:
        return self.rootdir / ".shakedown"


def settings_from(config: pytest.Config) -> Settings:
    rootdir = Path(config.rootpath)
    file = config.getoption("--shakedown-file") or config.getini("shakedown_file") or None
    strict = strict_mode(config)
    return Settings(
        file=(rootdir / file).resolve() if file and not Path(file).is_absolute()
        else Path(file) if file else None,
        keep=bool(config.getoption("--shakedown-keep")),
        reuse=bool(config.getoption("--shakedown-reuse")),
        strict=strict,
        rootdir=rootdir,
    )


def strict_mode(config: pytest.Config) -> bool:
    """A test that cannot run is an error: ``--shakedown-strict``, ini ``shakedown_strict``
    (this repository's pyproject.toml sets it) or ``CI=true``."""
    return bool(config.getoption("--shakedown-strict") or config.getini("shakedown_strict")
                or os.environ.get("CI", "").lower() in ("1", "true", "yes"))
