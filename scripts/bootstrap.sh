#!/usr/bin/env bash
# Installs everything shakedown and its tests need on a Debian machine: the servers from Debian's
# packages and the Python package with its dev tools in .venv. Safe to run again: it installs
# only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql postgresql-contrib redis-server etcd-server etcd-client haproxy pgbouncer
              python3-venv curl chromium faketime nftables)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  # Servers are started by shakedown itself, never as system services: keep the package
  # scripts from starting them (policy-rc.d exit 101 = "not allowed").
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO rm -f /usr/sbin/policy-rc.d
fi

# PostgreSQL extensions Debian does not package (Citus, pgvector): used when installed, else
# built once from a source tarball ($SHAKEDOWN_EXTENSION_SOURCES or ../shared/vendor/).
bash scripts/extensions.sh

# --- Patroni, for the postgres-ha service kind -------------------------------------------------
# Patroni runs as the unprivileged service user, so it needs a Python environment that user can
# execute: a venv made from Debian's /usr/bin/python3 at a system path (a Python kept under
# /root, such as pyenv's, cannot be run by another user). Created once; skipped when present.
PATRONI_VENV="${SHAKEDOWN_PATRONI:-/opt/shakedown/patroni-venv}"
if [ ! -x "$PATRONI_VENV/bin/patroni" ]; then
  AS_ROOT=""
  [ "$(id -u)" -eq 0 ] || AS_ROOT="sudo"
  echo "bootstrap: creating $PATRONI_VENV (Patroni for the postgres-ha kind)"
  $AS_ROOT mkdir -p "$(dirname "$PATRONI_VENV")"
  $AS_ROOT /usr/bin/python3 -m venv "$PATRONI_VENV"
  if ! out=$($AS_ROOT "$PATRONI_VENV/bin/python" -m pip install -q 'patroni[etcd3]>=4,<5' \
             'psycopg[binary]>=3.1' 2>&1); then
    echo "$out" | grep -v 'is ignored: it is neither' >&2
    exit 1
  fi
fi
# ------------------------------------------------------------------------------------------------

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PYTHON" -m venv .venv
fi
# pip prints a warning for each package about this machine's absent local indexes: show pip's
# output only when it fails.
pip_quietly() {
  local out
  if ! out=$(.venv/bin/python -m pip "$@" 2>&1); then
    echo "$out" | grep -v 'is ignored: it is neither' >&2
    return 1
  fi
}
stamp=.venv/.shakedown-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing shakedown and its dev tools into .venv"
  pip_quietly install -q --upgrade pip
  pip_quietly install -q -e '.[dev]'
  touch "$stamp"
fi
