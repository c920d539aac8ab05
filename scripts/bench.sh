#!/usr/bin/env bash
# Run every benchmark; each prints its figures and rewrites its section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
for bench in bench/list_api.py bench/probe_round.py bench/healing.py bench/verify.py bench/telemetry.py bench/alerting.py bench/serving.py bench/gateway.py bench/faults.py bench/service_faults.py bench/vllm_cpu.py "$@"; do
  echo "== $bench"
  .venv/bin/python "$bench"
done
