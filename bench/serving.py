"""Benchmark: the console's load generator (jobs.benchmarks.generator) against guidellm.

Both drive the same simulator process (``python -m jobs.simulator``) at the same concurrency levels,
with the same request count per level and the same output length (``max_tokens`` with ignore_eos),
in the same run: ours, then guidellm, then ours again (the mean of our two passes is compared, so a
drift of the machine during the run shows up as a gap between them). The figure of merit is output
tokens/s; the goal is ours ≥ 0.95 × guidellm's at every level.

guidellm is not a dependency of the console: it pulls torch and transformers. It is installed into a
throw-away virtual environment (``GUIDELLM_VENV``, default ``/tmp/guidellm-venv``;
``python3 -m venv /tmp/guidellm-venv && /tmp/guidellm-venv/bin/pip install guidellm``). guidellm needs
a Hugging Face tokenizer for its synthetic prompts; with no network, a word-level tokenizer is written
locally and passed with ``--tokenizer``. Without guidellm the script compares against a minimal
independent baseline (one synchronous httpx client per concurrency slot, in threads) and says so.

Usage: ``.venv/bin/python bench/serving.py [--levels 1,8,32,64] [--output-tokens 128]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, write_section  # noqa: E402
from jobs.benchmarks import generator  # noqa: E402

READY = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
MODEL = "bench-sim"


def start_simulator(log: Path, ttft_ms: float, tpot_ms: float) -> tuple[subprocess.Popen, int]:
    handle = open(log, "w")  # noqa: SIM115 - kept open for the process' lifetime
    process = subprocess.Popen([sys.executable, "-m", "jobs.simulator", "--host", "127.0.0.1", "--port", "0",
                                "--model", MODEL, "--ttft-ms", str(ttft_ms), "--tpot-ms", str(tpot_ms)],
                               cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = READY.search(log.read_text())
        if match:
            return process, int(match.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the simulator did not start: {log.read_text()}")


def ours(url: str, levels: list[int], requests: dict[int, int], input_tokens: int, output_tokens: int) -> dict:
    spec = generator.LoadSpec(endpoints=(url + "/v1",), model=MODEL)
    results = asyncio.run(generator.run_sweep(
        spec, levels, lambda i: generator.synthetic_prompt(i, input_tokens, output_tokens),
        requests_per_level=lambda c: requests[c], scrape=False))
    return {level.concurrency: level.as_dict() for level in results}


def guidellm_tokenizer(folder: Path) -> Path:
    """A local word-level tokenizer (guidellm needs one for synthetic prompts; there is no network)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = f"""
import json
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
words = ["[UNK]"] + sorted(set({list(generator.WORDS)!r}))
tok = Tokenizer(models.WordLevel(vocab={{w: i for i, w in enumerate(words)}}, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
tok.decoder = decoders.WordPiece()
tok.save({str(folder / "tokenizer.json")!r})
json.dump({{"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "model_max_length": 1000000}},
          open({str(folder / "tokenizer_config.json")!r}, "w"))
"""
    subprocess.run([str(GUIDELLM_PY), "-c", script], check=True)
    return folder


def guidellm(url: str, levels: list[int], requests: dict[int, int], input_tokens: int, output_tokens: int,
             work: Path) -> dict:
    """One guidellm process, one ``concurrent`` benchmark per level; output tokens/s by level."""
    out: dict[int, dict] = {}
    tokenizer = guidellm_tokenizer(work / "tokenizer")
    for concurrency in levels:  # one process per level: max_requests differs per level
        report = work / f"guidellm-{concurrency}.json"
        command = [str(GUIDELLM_BIN), "run", "--backend", f"kind=openai_http,target={url},model={MODEL}",
                   "--profile", f"kind=concurrent,streams={concurrency}",
                   "--constraint", f"kind=max_requests,count={requests[concurrency]}",
                   "--data", f"kind=synthetic_text,prompt_tokens={input_tokens},output_tokens={output_tokens}",
                   "--tokenizer", f"kind=huggingface_auto,model={tokenizer}",
                   "--output", f"kind=json,path={report}", "--disable-console"]
        started = time.monotonic()
        subprocess.run(command, check=True, cwd=work, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)
        bench = json.loads(report.read_text())["benchmarks"][0]
        metrics = bench["metrics"]
        tokens = metrics["output_token_count"]["successful"]["total_sum"]
        out[concurrency] = {
            "output_tokens_per_s": metrics["output_tokens_per_second"]["successful"]["mean"],
            "output_tokens_per_s_total_over_duration": tokens / bench["duration"],
            "completed": metrics["request_totals"]["successful"],
            "errors": metrics["request_totals"]["errored"],
            "ttft_p50_ms": metrics["time_to_first_token_ms"]["successful"]["median"],
            "wall_s": time.monotonic() - started,
        }
    return out


def threaded_baseline(url: str, levels: list[int], requests: dict[int, int], input_tokens: int,
                      output_tokens: int) -> dict:
    """The fallback baseline: one blocking httpx client per slot, each in its own thread."""
    import httpx

    out = {}
    for concurrency in levels:
        counter = iter(range(requests[concurrency]))
        lock = threading.Lock()
        tokens = []

        def slot(counter=counter, lock=lock, tokens=tokens) -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    with lock:
                        index = next(counter, None)
                    if index is None:
                        return
                    prompt = generator.synthetic_prompt(index, input_tokens, output_tokens)
                    body = {"model": MODEL, "stream": True, "stream_options": {"include_usage": True},
                            "max_tokens": output_tokens, "ignore_eos": True,
                            "messages": [{"role": "user", "content": prompt.text}]}
                    with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
                        for line in response.iter_lines():
                            if line.startswith("data: {") and '"usage":{' in line:
                                usage = json.loads(line[6:]).get("usage") or {}
                                if usage.get("completion_tokens"):
                                    tokens.append(usage["completion_tokens"])

        started = time.perf_counter()
        threads = [threading.Thread(target=slot) for _ in range(concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        out[concurrency] = {"output_tokens_per_s": sum(tokens) / (time.perf_counter() - started),
                            "completed": len(tokens), "errors": requests[concurrency] - len(tokens)}
    return out


GUIDELLM_VENV = Path(os.environ.get("GUIDELLM_VENV", "/tmp/guidellm-venv"))
GUIDELLM_BIN = GUIDELLM_VENV / "bin" / "guidellm"
GUIDELLM_PY = GUIDELLM_VENV / "bin" / "python"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=128)
    parser.add_argument("--ttft-ms", type=float, default=20)
    parser.add_argument("--tpot-ms", type=float, default=5)
    args = parser.parse_args()
    levels = [int(v) for v in args.levels.split(",")]
    requests = {c: max(4 * c, 16) for c in levels}
    work = Path(tempfile.mkdtemp(prefix="boom-serving-bench-"))
    process, port = start_simulator(work / "simulator.log", args.ttft_ms, args.tpot_ms)
    url = f"http://127.0.0.1:{port}"
    have_guidellm = GUIDELLM_BIN.exists()
    try:
        first = ours(url, levels, requests, args.input_tokens, args.output_tokens)
        if have_guidellm:
            version = subprocess.run([str(GUIDELLM_BIN), "--version"], capture_output=True, text=True).stdout.strip()
            baseline = guidellm(url, levels, requests, args.input_tokens, args.output_tokens, work)
            name = f"guidellm ({version})"
        else:
            baseline = threaded_baseline(url, levels, requests, args.input_tokens, args.output_tokens)
            name = "threaded httpx baseline (guidellm not installed)"
        second = ours(url, levels, requests, args.input_tokens, args.output_tokens)
    finally:
        process.terminate()
        process.wait(timeout=10)

    lines = [f"| concurrency | requests | ours, pass 1 | ours, pass 2 | {name} | ours ÷ baseline | "
             "baseline: its tokens ÷ its duration | ours TTFT p50 | baseline TTFT p50 |",
             "|---|---|---|---|---|---|---|---|---|"]
    ratios = []
    for c in levels:
        mine = statistics.mean([first[c]["output_tokens_per_s"], second[c]["output_tokens_per_s"]])
        theirs = baseline[c]["output_tokens_per_s"]
        ratio = mine / theirs if theirs else float("nan")
        ratios.append(ratio)
        ttft_theirs = baseline[c].get("ttft_p50_ms")
        lines.append(f"| {c} | {requests[c]} | {first[c]['output_tokens_per_s']:.0f} tok/s | "
                     f"{second[c]['output_tokens_per_s']:.0f} tok/s | {theirs:.0f} tok/s | **{ratio:.2f}** | "
                     f"{baseline[c].get('output_tokens_per_s_total_over_duration', theirs):.0f} tok/s | "
                     f"{first[c]['ttft_p50_ms']:.1f} ms | "
                     f"{'—' if ttft_theirs is None else f'{ttft_theirs:.1f} ms'} |")
        print(f"c={c}: ours {first[c]['output_tokens_per_s']:.0f}/{second[c]['output_tokens_per_s']:.0f} "
              f"baseline {theirs:.0f} ratio {ratio:.3f}", flush=True)
    verdict = "meets" if min(ratios) >= 0.95 else "misses"
    body = (
        f"Output tokens/s of the console's load generator (`jobs/benchmarks/generator.py`, asyncio + aiohttp) "
        f"and of {name} against one simulator process (`--ttft-ms {args.ttft_ms:g} --tpot-ms {args.tpot_ms:g}`), "
        f"same levels, same requests per level (4 × concurrency, at least 16), {args.output_tokens} output tokens "
        f"per request (ignore_eos), streaming, in the same run: ours, the baseline, ours again. The lowest ratio is "
        f"{min(ratios):.2f}: it {verdict} the goal of ≥ 0.95. Client and server share the machine's cores, so at "
        f"high concurrency the figures measure the pair.\n\n" + "\n".join(lines)
    )
    if not have_guidellm:
        body += ("\n\nguidellm could not be installed here, so the baseline is a minimal independent client "
                 "(one blocking httpx client per concurrency slot, in threads).")
    else:
        body += ("\n\nguidellm was installed into a throw-away virtual environment (it pulls torch and "
                 "transformers, which the console does not need); its synthetic prompts use a local word-level "
                 "tokenizer because there is no network. Its figure is its own `output_tokens_per_second` mean.")
    write_section("Serving benchmark: our load generator against guidellm", body)


if __name__ == "__main__":
    main()
