#!/usr/bin/env bash
# Build (once) and cache the C++ `llama-server` from llama.cpp, for the integration tests that run a
# real serving engine on CPU. Idempotent: when the cached binary exists and `--version` runs, it only
# prints its path. The last line on stdout is the binary's absolute path; the log goes to stderr.
#
# Source: the llama.cpp tree vendored in the llama-cpp-python sdist (PyPI carries no llama.cpp
#         source or binary of its own). Version: $LLAMA_CPP_PYTHON_VERSION (default below; keep
#         tests/engines_support/llama_server.py in step).
# Cache:  ${BOOM_CACHE_DIR:-$HOME/.cache/boom-console}/llama-server/<version>/llama-server
#         Built with -march=native (llama.cpp's default): do not share the cache between machines
#         with different CPUs.
# Tools:  cmake, ninja and g++; when missing they are installed with apt-get as root (CI), or
#         cmake and ninja with pip into the project's virtualenv otherwise.
# Time:   about 12 minutes on 2 idle cores; seconds once cached.
#
# Usage:  BOOM_LLAMA_SERVER=$(scripts/build-llama-server.sh | tail -1); export BOOM_LLAMA_SERVER
set -euo pipefail

VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_DIR=${BOOM_CACHE_DIR:-${HOME:-/root}/.cache/boom-console}/llama-server/$VERSION
BIN=$CACHE_DIR/llama-server

log() { echo "build-llama-server: $*" >&2; }
die() { echo "build-llama-server: ERROR: $*" >&2; exit 1; }
works() { [ -f "$1" ] && [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }
done_with() { log "$2: $1"; echo "$1"; exit 0; }

works "$BIN" && done_with "$BIN" "cached"

mkdir -p "$CACHE_DIR" || die "cannot create the cache directory $CACHE_DIR"
# One build at a time per cache directory: a second caller waits, then finds the binary.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.lock"
  flock -n 9 || { log "another build holds $CACHE_DIR/.lock; waiting"; flock 9; }
  works "$BIN" && done_with "$BIN" "cached (built by a concurrent run)"
fi

is_root() { [ "$(id -u)" = 0 ]; }
apt_install() {
  is_root && command -v apt-get >/dev/null 2>&1 || return 1
  log "installing with apt-get: $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$@" >&2
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/boom-llama-server.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "working in $WORK"

# --- a pip to download the sdist with ------------------------------------------------------------
# The project's virtualenv; else python3's own pip; else a throwaway virtualenv (Debian's python3
# has no pip, and `make` may not have created .venv yet).
if [ -x "$ROOT/.venv/bin/python" ] && "$ROOT/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
  PY=$ROOT/.venv/bin/python
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  PY=python3
else
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv || die "no python3"
  python3 -m venv "$WORK/venv" >/dev/null 2>&1 \
    || { apt_install python3-venv && python3 -m venv "$WORK/venv" >&2; } \
    || die "no pip: create the project's .venv (make .venv/.installed) or install python3-venv"
  PY=$WORK/venv/bin/python
fi

# --- build tools --------------------------------------------------------------------------------
have_cxx() { command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1; }
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
have_cxx || missing+=(g++)
if [ ${#missing[@]} -gt 0 ] && ! apt_install "${missing[@]}"; then
  have_cxx || die "no C++ compiler: install g++ (apt-get install g++) and rerun"
  # Into the temporary directory: nothing outside it changes.
  log "installing cmake and ninja with pip into $WORK/tools"
  "$PY" -m pip install -q --target "$WORK/tools" cmake ninja >&2 || die "pip install cmake ninja failed"
  PATH="$WORK/tools/bin:$PATH"
  PYTHONPATH="$WORK/tools${PYTHONPATH:+:$PYTHONPATH}"
  export PATH PYTHONPATH
fi
command -v cmake >/dev/null 2>&1 || die "cmake is missing"
command -v ninja >/dev/null 2>&1 || die "ninja is missing"
have_cxx || die "g++ is missing"

# --- download, build, install -------------------------------------------------------------------
log "downloading the llama-cpp-python $VERSION sdist (about 75 MB)"
"$PY" -m pip download -q --no-binary llama-cpp-python --no-deps \
  "llama-cpp-python==$VERSION" -d "$WORK/dl" >&2 \
  || die "pip download llama-cpp-python==$VERSION failed"
sdist=$(find "$WORK/dl" -maxdepth 1 -name '*.tar.gz' | head -1)
[ -n "$sdist" ] || die "pip downloaded no sdist into $WORK/dl"
tar -xzf "$sdist" -C "$WORK" || die "cannot extract $sdist"
SRC=$(find "$WORK" -mindepth 3 -maxdepth 3 -type d -path '*/vendor/llama.cpp' | head -1)
if [ -z "$SRC" ] || [ ! -f "$SRC/CMakeLists.txt" ]; then die "$sdist has no vendor/llama.cpp"; fi

jobs=$(nproc 2>/dev/null || echo 2)
log "configuring $SRC"
cmake -S "$SRC" -B "$WORK/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >&2 \
  || die "cmake configure failed (see above)"
log "building llama-server with $jobs jobs (about 12 min on 2 idle cores)"
start=$(date +%s)
cmake --build "$WORK/build" --target llama-server -j "$jobs" >&2 || die "the build failed (see above)"
log "built in $(($(date +%s) - start)) s"

built=$(find "$WORK/build" -type f -name llama-server -perm -u+x | head -1)
[ -n "$built" ] || die "the build produced no llama-server binary"
works "$built" || die "the new $built does not run '--version'"
# Atomic: a reader sees no binary or the whole binary, never a partial copy.
cp "$built" "$CACHE_DIR/.llama-server.$$"
mv -f "$CACHE_DIR/.llama-server.$$" "$BIN"
log "installed $BIN: $("$BIN" --version 2>&1 | head -1)"
echo "$BIN"
