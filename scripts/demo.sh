#!/usr/bin/env bash
# The demo: installs what is missing, brings the example topology up (a PostgreSQL primary
# with a streaming replica, Redis and a small HTTP app), exercises it, shows it, and takes it
# down; then runs the example test suites written with the pytest plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
cd examples/demo

trap 'shakedown down --name demo >/dev/null 2>&1 || true' EXIT
echo "== shakedown up"
shakedown up --detach --name demo
eval "$(shakedown env --name demo)"

echo; echo "== the app writes through the primary and reads through the replica"
curl -fsS -X POST "$APP_URL/orders" -H 'Content-Type: application/json' -d '{"item": "book"}'; echo
sleep 0.2
curl -fsS "$APP_URL/orders/count"; echo

echo; echo "== shakedown status"
shakedown status --name demo
echo; echo "== shakedown logs app"
shakedown logs app --name demo -n 5

echo; echo "== shakedown down"
shakedown down --name demo
trap - EXIT
left=$(ls /dev/shm/shakedown 2>/dev/null | grep -v '^ports$' || true)
echo "left behind in the runtime dir: ${left:-nothing}"

echo; echo "== the example suite, written with the pytest plugin"
cd ../..
pytest -p no:cacheprovider examples/demo
