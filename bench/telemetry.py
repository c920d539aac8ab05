"""Benchmark: live telemetry of N = 10, 100, 200 nodes of 8 accelerators sampled every second.

Real processes, as ``make run`` starts them: the collector (``manage.py collect --simulate``: every
node's sampler lines are made up in-process and parsed by the real parser, so no sshd is needed for
200 nodes) and the web server (daphne) on the embedded profile (SQLite, the stream table polled by
the web process). A websocket client (aiohttp, token auth) subscribes to ``cluster`` (the overview's
heatmap: every accelerator) and to 20 node topics (node pages), and measures sample-to-browser
latency: arrival time minus the time the collector read the sample's line.

Also measured: the ingest rate (sample rows written per second), the collector's CPU (of one core),
and, as the baseline of the ratio, the raw batch insert rate of the accelerator sample table in the
same run (``bulk_create`` of 1000 rows per transaction, nothing else running).
"""

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, setup_django, write_section  # noqa: E402

WARMUP_S = 8
MEASURE_S = 20
NODE_TOPICS = 20


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def listen(url: str, topics: list[str], seconds: float, warmup: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    node_latencies: list[float] = []
    messages = 0
    bytes_in = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.send_json({"type": "subscribe", "topics": topics})
        started = time.time()
        while time.time() - started < warmup + seconds:
            try:
                message = await ws.receive(timeout=2)
            except TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            body = json.loads(message.data)
            if body.get("type") != "data" or now - started < warmup:
                continue
            messages += 1
            bytes_in += len(message.data)
            for cell in body["data"].get("state", {}).get("accelerators", {}).values():
                latencies.append(now - cell[3])
            for frame in body["data"].get("frames", []):
                if frame["scope"] in ("node", "accelerator"):
                    node_latencies += [now - row[0] for row in frame["rows"]]
    return {"cluster": latencies, "node": node_latencies, "messages": messages, "bytes": bytes_in}


def run_size(n: int, env: dict, token: str) -> dict:
    import psutil
    from django.db import connection

    from nodes.models import Accelerator, AcceleratorSample, Node, NodeSample

    Node.objects.all().delete()
    Accelerator.objects.all().delete()
    AcceleratorSample.objects.all().delete()
    NodeSample.objects.all().delete()
    nodes = Node.objects.bulk_create([Node(name=f"sim-{i:04d}", address=f"10.2.{i // 250}.{i % 250 + 1}",
                                           transport="ssh", status="online", telemetry_interval_s=1,
                                           accelerator_count=8) for i in range(n)])
    Accelerator.objects.bulk_create([Accelerator(node=node, index=j, vendor="nvidia", kind="gpu", model="H100",
                                                 uuid=f"SIM-{node.pk}-{j}", memory_total_bytes=80 << 30)
                                     for node in nodes for j in range(8)])
    connection.close()
    port = free_port()
    web = subprocess.Popen([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                            "console.asgi:application"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    collector = subprocess.Popen([sys.executable, "manage.py", "collect", "--simulate", "--stats-every", "0"],
                                 cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        topics = ["cluster"] + [f"node:{node.pk}" for node in nodes[:NODE_TOPICS]]
        url = f"ws://127.0.0.1:{port}/ws/stream/?token={token}"
        proc = psutil.Process(collector.pid)
        web_proc = psutil.Process(web.pid)

        async def measure():
            listener = asyncio.ensure_future(listen(url, topics, MEASURE_S, WARMUP_S))
            await asyncio.sleep(WARMUP_S)
            cpu0, web0, t0 = sum(proc.cpu_times()[:2]), sum(web_proc.cpu_times()[:2]), time.time()
            rows0 = await asyncio.to_thread(_rows)
            result = await listener
            cpu1, web1, t1 = sum(proc.cpu_times()[:2]), sum(web_proc.cpu_times()[:2]), time.time()
            rows1 = await asyncio.to_thread(_rows)
            result.update(collector_cpu=(cpu1 - cpu0) / (t1 - t0), web_cpu=(web1 - web0) / (t1 - t0),
                          ingest=(rows1 - rows0) / (t1 - t0), load=os.getloadavg()[0])
            return result

        def _rows():
            from django.db import connection as conn

            try:
                return AcceleratorSample.objects.count() + NodeSample.objects.count()
            finally:
                conn.close()

        result = asyncio.run(measure())
    finally:
        for process in (collector, web):
            process.terminate()
        for process in (collector, web):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    result["baseline"] = baseline_insert_rate(nodes)
    return result


def baseline_insert_rate(nodes, rows: int = 20_000, batch: int = 1000) -> float:
    """Rows per second that bulk_create of the accelerator sample table sustains, alone."""
    from django.db import transaction

    from nodes.models import Accelerator, AcceleratorSample

    accelerators = list(Accelerator.objects.filter(node__in=nodes[:10]).values_list("pk", "node_id"))
    ts = int(time.time() * 1000)
    objects = [AcceleratorSample(accelerator_id=a, node_id=n, ts=ts + i, utilization_percent=50.0, memory_used_bytes=1,
                                 memory_percent=1.0, temperature_c=50.0, power_w=300.0, health=0)
               for i in range(rows // len(accelerators) + 1) for a, n in accelerators][:rows]
    started = time.perf_counter()
    for i in range(0, rows, batch):
        with transaction.atomic():
            AcceleratorSample.objects.bulk_create(objects[i:i + batch])
    return rows / (time.perf_counter() - started)


def main(sizes=(10, 100, 200)):
    data_dir = setup_django()
    from django.contrib.auth.models import User

    from console.core.models import ApiToken

    user = User.objects.create_superuser("bench", password="bench-password-123")
    token = ApiToken.objects.create(user=user).key
    env = dict(os.environ, CONSOLE_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="console.settings",
               CELERY_TASK_ALWAYS_EAGER="false", PYTHONUNBUFFERED="1")
    results = {}
    for n in sizes:
        results[n] = run_size(n, env, token)
        r = results[n]
        print(f"N={n}: cluster p50 {percentile(r['cluster'], .5):.3f} s p95 {percentile(r['cluster'], .95):.3f} s; "
              f"node p50 {percentile(r['node'], .5):.3f} p95 {percentile(r['node'], .95):.3f}; "
              f"ingest {r['ingest']:.0f}/s; collector CPU {r['collector_cpu'] * 100:.0f}%; "
              f"web CPU {r['web_cpu'] * 100:.0f}%; baseline {r['baseline']:.0f}/s; load {r['load']:.1f}", flush=True)
    lines = ["| nodes × 8 accelerators | heatmap (`cluster`) latency p50 / p95 | node page latency p50 / p95 | "
             "ingest rate | raw batch insert rate (baseline) | ingest / baseline | collector CPU | web CPU | "
             "stream messages / s | machine load (1 min) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in results.items():
        lines.append(
            f"| {n} | {percentile(r['cluster'], .5):.2f} s / {percentile(r['cluster'], .95):.2f} s | "
            f"{percentile(r['node'], .5):.2f} s / {percentile(r['node'], .95):.2f} s | "
            f"{r['ingest']:.0f} rows/s | {r['baseline']:.0f} rows/s | {r['ingest'] / r['baseline']:.2f} | "
            f"{r['collector_cpu'] * 100:.0f}% | {r['web_cpu'] * 100:.0f}% | {r['messages'] / MEASURE_S:.1f} | "
            f"{r['load']:.1f} |")
    worst = percentile(results[max(sizes)]["cluster"], .95)
    node_worst = percentile(results[max(sizes)]["node"], .95)
    body = (
        f"Every node samples every second (1 node row + 8 accelerator rows). The collector (`manage.py collect "
        f"--simulate`) and daphne run as separate processes on the embedded profile (SQLite, the stream table "
        f"polled every {os.environ.get('CONSOLE_STREAM_POLL_MS', '100')} ms); one websocket client subscribes to "
        f"`cluster` and {NODE_TOPICS} node topics and measures arrival time minus the time the collector read the "
        f"sample, over {MEASURE_S} s after {WARMUP_S} s of warm-up. CPU is the share of one core. The baseline is "
        "`bulk_create` of the accelerator sample table, 1000 rows per transaction, measured in the same run with "
        "nothing else running. The machine load is the 1-minute load average at the end of the measurement "
        "(2 cores: above 2, other work competed for the CPU).\n\n" + "\n".join(lines) +
        f"\n\nGoal: p95 at most 1.5 s at N = {max(sizes)}: heatmap **{worst:.2f} s**, node page "
        f"**{node_worst:.2f} s**. A heatmap cell waits for the `cluster` topic's once-a-second message (the "
        "throttle: at most one message per topic per second per client); a node page's points travel in their "
        "node's own message, published at the collector's next flush (every 100 ms).")
    print(body)
    write_section("Live telemetry", body)


if __name__ == "__main__":
    main()
