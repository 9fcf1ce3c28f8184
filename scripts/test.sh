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
echo "== pytest";        pytest "$@"
