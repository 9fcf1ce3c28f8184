#!/usr/bin/env bash
# The test command: installs what is missing, then runs the linters, the type checker, the
# layer contract and the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";          ruff check src tests bench examples
echo "== mypy";          mypy
echo "== import layers"; lint-imports
# Two xdist workers (the machine has 2 cores; most test time is waiting on servers): the
# plugin sends tests sharing an environment to one worker. Override with -n 0 or -n N.
echo "== pytest";        pytest -n "${SHAKEDOWN_TEST_WORKERS:-2}" "$@"
