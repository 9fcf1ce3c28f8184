#!/usr/bin/env bash
# Makes the PostgreSQL extensions that Debian does not package (Citus, pgvector) available to
# the PostgreSQL server shakedown runs. Called by scripts/bootstrap.sh; safe to run again.
#
# For each extension, in order:
#   1. installed already (its .control file and library are in the server's directories): use it;
#   2. a source tarball in $SHAKEDOWN_EXTENSION_SOURCES or ../shared/vendor/ (beside the
#      checkout): build it once (with postgresql-server-dev pinned to the server's version) into
#      the cache, keyed by the tarball's sha256 and the server's version, and install it from
#      there -- a second run, or a reinstall after the server package replaced its directories,
#      builds nothing;
#   3. neither: print the one command that installs it from its project's package repository
#      (an error with CI=true, where a missing extension must not turn into skipped tests).
# Quiet when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump when the build recipe below changes: cached builds made by another recipe are redone.
RECIPE=1

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

pg_config=${SHAKEDOWN_PG_CONFIG:-}
if [ -z "$pg_config" ]; then
  # The newest server's pg_config, as shakedown picks the newest /usr/lib/postgresql/*/bin.
  pg_config=$(ls -d /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -V | tail -n 1 || true)
fi
if [ -z "$pg_config" ] || [ ! -x "$pg_config" ]; then
  echo "extensions: no PostgreSQL server found (/usr/lib/postgresql/*/bin/pg_config): skipped" >&2
  exit 0
fi
server_version=$("$pg_config" --version | awk '{print $2}')   # "PostgreSQL 15.18 (Debian ...)"
major=${server_version%%.*}
sharedir=$("$pg_config" --sharedir)
pkglibdir=$("$pg_config" --pkglibdir)

sources=${SHAKEDOWN_EXTENSION_SOURCES:-../shared/vendor}
if [ -n "${SHAKEDOWN_CACHE_DIR:-}" ]; then
  cache=$SHAKEDOWN_CACHE_DIR/extensions
elif [ "$(id -u)" -eq 0 ]; then
  cache=/var/cache/shakedown/extensions
else
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/shakedown/extensions
fi

installed() {  # installed NAME: the server can CREATE EXTENSION NAME
  [ -f "$sharedir/extension/$1.control" ] && [ -f "$pkglibdir/$1.so" ]
}

# The package that provides the server's own binaries, and its exact version (the headers
# must match the server; the newest postgresql-server-dev can be ahead of it).
server_package_version() {
  dpkg-query -W -f='${Version}' "postgresql-$major" 2>/dev/null || true
}

apt_install() {  # apt_install PACKAGE... (only the missing ones)
  local missing=() pkg spec
  for spec in "$@"; do
    pkg=${spec%%=*}
    if [ "$spec" != "$pkg" ]; then  # pinned: the exact version must be installed
      [ "$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)" = "${spec#*=}" ] && continue
    else
      dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && continue
    fi
    missing+=("$spec")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "extensions: installing build dependencies: ${missing[*]}"
  local out
  # apt's and debconf's chatter is shown only when the install fails.
  if ! out=$($SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq 2>&1 &&
             DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install \
               -y -qq --no-install-recommends "${missing[@]}" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
}

build_deps() {  # build_deps NAME: the Debian packages its build needs
  local version
  version=$(server_package_version)
  if [ -z "$version" ]; then
    return 0  # not Debian's server: its pg_config must already come with the headers
  fi
  local deps=("postgresql-server-dev-$major=$version" make gcc)
  # Citus: lz4 and zstd for columnar compression; libkrb5-dev for gssapi/gssapi.h, which
  # libpq's headers include. libcurl is left out (--without-libcurl): it only serves Citus's
  # anonymous statistics, which would try to reach the internet from every test cluster.
  [ "$1" = citus ] && deps+=(liblz4-dev libzstd-dev libkrb5-dev)
  apt_install "${deps[@]}"
}

compile() {  # compile NAME SRC_DIR STAGE_DIR: build and install into STAGE_DIR (DESTDIR)
  local name=$1 src=$2 stage=$3 jobs
  jobs=$(nproc 2>/dev/null || echo 1)
  (
    cd "$src"
    if [ "$name" = citus ]; then
      ./configure PG_CONFIG="$pg_config" --without-libcurl
    fi
    # with_llvm=no: no JIT bitcode (it needs clang at build time and serves no test).
    make -j"$jobs" PG_CONFIG="$pg_config" with_llvm=no
    make PG_CONFIG="$pg_config" with_llvm=no DESTDIR="$stage" install
  )
}

cache_dir() {  # cache_dir NAME TARBALL: where the build of this tarball for this server lives
  echo "$cache/$1-$(sha256sum "$2" | cut -c1-12)-pg$server_version-r$RECIPE"
}

build() {  # build NAME TARBALL DIR: build and stage into DIR, once (concurrent runs wait)
  local name=$1 tarball=$2 dir=$3 work top started
  mkdir -p "$cache"
  exec 9>"$dir.lock"
  flock 9
  if [ -f "$dir/ok" ]; then  # built by a concurrent run meanwhile
    exec 9>&-
    return 0
  fi
  build_deps "$name"
  work=$dir.building
  rm -rf "$work"
  mkdir -p "$work/src"
  echo "extensions: building $name from $tarball (once; cached in $dir)"
  started=$SECONDS
  tar -xzf "$tarball" -C "$work/src"
  top=$work/src
  # An archive with a single top-level directory (citus-src/): build inside it.
  if [ "$(find "$top" -mindepth 1 -maxdepth 1 | wc -l)" -eq 1 ] \
     && [ -d "$(find "$top" -mindepth 1 -maxdepth 1)" ]; then
    top=$(find "$top" -mindepth 1 -maxdepth 1)
  fi
  if ! compile "$name" "$top" "$work/stage" >"$work/build.log" 2>&1; then
    echo "extensions: building $name failed; the last lines of $work/build.log:" >&2
    tail -n 25 "$work/build.log" >&2
    exit 1
  fi
  rm -rf "$work/src"
  echo "$tarball" >"$work/source"
  touch "$work/ok"
  rm -rf "$dir"
  mv "$work" "$dir"
  exec 9>&-
  echo "extensions: built $name in $((SECONDS - started)) s"
}

install_staged() {  # install_staged NAME DIR: copy the staged files into the server's dirs
  echo "extensions: installing $1 into $pkglibdir and $sharedir/extension"
  $SUDO cp -a "$2/stage/." /
}

repository_command() {  # the one command that installs NAME from its project's packages
  case "$1" in
    citus)
      echo "curl -fsSL https://install.citusdata.com/community/deb.sh | sudo bash && sudo apt-get install -y postgresql-$major-citus-13.2" ;;
    vector)
      echo "sudo /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y && sudo apt-get install -y postgresql-$major-pgvector" ;;
  esac
}

failed=0
# name (as in CREATE EXTENSION) and the tarball's name pattern
for entry in "citus citus-*.tar.gz" "vector pgvector-*.tar.gz"; do
  name=${entry%% *}
  pattern=${entry#* }
  installed "$name" && continue
  tarball=$(ls -d "$sources"/$pattern 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$tarball" ]; then
    dir=$(cache_dir "$name" "$tarball")
    if [ ! -f "$dir/ok" ]; then build "$name" "$tarball" "$dir"; fi
    install_staged "$name" "$dir"
    installed "$name" && continue
    echo "extensions: $name was installed but $sharedir/extension/$name.control or" \
         "$pkglibdir/$name.so is still missing" >&2
  else
    echo "extensions: $name is not installed and no source tarball $pattern is in $sources" \
         "(set SHAKEDOWN_EXTENSION_SOURCES to a directory holding one)" >&2
    echo "extensions: install it from its own package repository with:" >&2
    echo "  $(repository_command "$name")" >&2
  fi
  failed=1
done
if [ "$failed" -ne 0 ] && [ "${CI:-}" = true ]; then
  echo "extensions: CI=true: a missing extension is an error here" >&2
  exit 1
fi
exit 0
