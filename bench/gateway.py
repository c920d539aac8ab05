"""Benchmark: the inference gateway (jobs/gateway) against the same simulator reached directly.

The gateway runs as its own process (``manage.py gateway --port N``) on a throw-away console database
(SQLite in a fresh data directory, or ``--database-url``), with jobs, instances and a key written
through the ORM; the engines are simulator processes (``python -m jobs.simulator``). The client is
an asyncio + aiohttp closed loop in this process. Every figure is compared with a baseline measured
in the same run, because the machine is shared and noisy:

1. Added latency: the same requests at concurrency 1 to the simulator directly and through the
   gateway, in alternating blocks, non-streaming (latency) and streaming (time to the first token).
   The simulator is set to zero delay, so the difference is the gateway's own cost.
   Goal: p50 added at most 1 ms.
2. Throughput at concurrency 64, through the gateway ÷ direct, alternating windows, against a
   simulator with engine-like delays (the engine is the bottleneck, as with a real one). Goal ≥ 0.85.
   Then, against a zero-delay simulator with tiny outputs (the gateway is the bottleneck), requests
   per second per gateway CPU core: completed requests ÷ the gateway process's CPU seconds over the
   window (psutil), and the gateway's share of the CPU the client, simulator and gateway used.
   Goal ≥ 500 requests/s per core.
3. Failover: one job with two simulator instances, 16 non-streaming clients, one instance killed with
   ``kill -9``. No reconciler runs: the dead instance stays ``running`` in the database, so only the
   gateway's retries and passive ejection protect the clients (the harder case). Failed requests are
   counted (goal 0); p99 latency in the second after the kill against the p99 before it.
4. Revocation: a client polls with a key (a request every 10 ms); the key is revoked through
   ``jobs.gateway.services.revoke_key`` (what the API does); time to the first 401. Goal ≤ 2 s.

Usage: ``.venv/bin/python bench/gateway.py [--quick] [--no-write] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from bench.common import setup_django, write_section  # noqa: E402
from bench.gateway_harness import (  # noqa: E402
    GatewayProcess,
    Simulator,
    Target,
    body,
    closed_loop,
    cpu_s,
    make_rows,
    ms,
    one,
    pct,
    session_for,
)


class SshCase:
    """A job of two replicas placed and launched by the product's reconciler: one on the local node, one
    on an SSH node (a real sshd on loopback, ``tests/sshd.py``). :meth:`lose` kills the SSH node's sshd
    with every session and its engine, as a machine going down."""

    LABELS = {"gateway-bench": "ssh-case"}

    def __init__(self, work: Path, version) -> None:
        from jobs import reconciler
        from jobs.models import Instance, Job
        from nodes.models import Node
        from nodes.services import create_credential, probe_node, register_local_node
        from tests.sshd import SshdNode

        self.reconciler, self.Instance, self.Node = reconciler, Instance, Node
        home = work / "ssh-node-home"
        home.mkdir()
        self.daemon = SshdNode(env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)}).start()
        local = register_local_node()
        Node.objects.filter(pk=local.pk).update(labels=self.LABELS)
        probe_node(local.pk)
        credential = create_credential(name="bench-ssh", username=self.daemon.username,
                                       private_key=self.daemon.client_key_pem, passphrase=None)
        self.remote = Node.objects.create(name="ssh-node", address="127.0.0.1", transport="ssh",
                                          ssh_port=self.daemon.port, credential=credential, labels=self.LABELS)
        probe_node(self.remote.pk)
        self.remote.refresh_from_db()
        if self.remote.status != "online":
            raise SystemExit(f"the SSH node is {self.remote.status}: {self.remote.status_detail}")
        self.job = Job.objects.create(
            name="ssh-spread", engine="simulator", model_version=version, replicas=2, accelerators_per_replica=0,
            placement="spread", desired_state="running", node_selector=self.LABELS,
            options={"python": sys.executable, "ttft_ms": 20, "tpot_ms": 2})
        deadline = time.monotonic() + 60
        while True:
            reconciler.reconcile_job(self.job.pk)
            running = list(Instance.objects.filter(job=self.job, state="running"))
            if len(running) == 2:
                break
            if time.monotonic() > deadline:
                states = list(Instance.objects.filter(job=self.job).values("node__name", "state", "state_detail"))
                raise SystemExit(f"the SSH case's replicas did not start: {states}")
            time.sleep(0.2)
        by_node = {i.node_id: i for i in running}
        if set(by_node) != {local.pk, self.remote.pk}:
            raise SystemExit(f"the replicas are not on both nodes: {by_node}")
        self.lost, self.survivor = by_node[self.remote.pk], by_node[local.pk]
        self.unreachable_after: float | None = None

    def lose(self) -> None:
        """The SSH node goes down; the reconciler is driven until it marks the node unreachable."""
        from nodes.transports.ssh import POOL

        t0 = time.perf_counter()
        self.daemon.stop()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.lost.pid, signal.SIGKILL)
        POOL.close_all()
        deadline = t0 + 60
        while time.perf_counter() < deadline:
            self.reconciler.reconcile_job(self.job.pk)
            if self.Node.objects.get(pk=self.remote.pk).status == "unreachable":
                self.unreachable_after = time.perf_counter() - t0
                return
            time.sleep(0.2)

    def cleanup(self) -> None:
        from nodes.transports.ssh import POOL

        for instance in (self.lost, self.survivor):
            with contextlib.suppress(ProcessLookupError, TypeError):
                os.kill(instance.pid, signal.SIGKILL)
        POOL.close_all()
        self.daemon.cleanup()


# --------------------------------------------------------------------------- measurements


async def added_latency(gw: GatewayProcess, sim: Simulator, key: str, model: str, requests: int) -> dict:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    plain = {"Content-Type": "application/json"}
    out = {}
    async with session_for(1) as session:
        for stream in (False, True):
            payload = body(model, 8, stream)
            direct = Target(sim.url + "/v1/chat/completions", payload, plain, stream)
            through = Target(gw.url + "/v1/chat/completions", payload, auth, stream)
            await closed_loop(session, direct, 1, count=50)  # warm-up: connections, caches
            await closed_loop(session, through, 1, count=50)
            got = {"direct": [], "gateway": []}
            blocks = 10
            for _ in range(blocks):
                got["direct"] += await closed_loop(session, direct, 1, count=requests // blocks)
                got["gateway"] += await closed_loop(session, through, 1, count=requests // blocks)
            for side, samples in got.items():
                failed = [s for s in samples if not s.ok]
                if failed:
                    raise SystemExit(f"{len(failed)} failed requests ({side}): {failed[0].error}")
                values = [s.ttft if stream else s.latency for s in samples]
                out[("ttft" if stream else "latency", side)] = (pct(values, 50), pct(values, 99), len(values))
    return out


async def throughput(gw: GatewayProcess, sim: Simulator, key: str, model: str, max_tokens: int,
                     window_s: float, rounds: int) -> dict:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    payload = body(model, max_tokens)
    direct = Target(sim.url + "/v1/chat/completions", payload, {"Content-Type": "application/json"})
    through = Target(gw.url + "/v1/chat/completions", payload, auth)
    me, engine = psutil.Process(), psutil.Process(sim.process.pid)
    res = {"direct": [], "gateway": [], "gw_cpu": 0.0, "sim_cpu": 0.0, "client_cpu": 0.0, "gw_requests": 0,
           "gw_wall": 0.0, "failed": 0}
    async with session_for(64) as session:
        await closed_loop(session, direct, 64, duration=1.0)
        await closed_loop(session, through, 64, duration=1.0)
        for _ in range(rounds):
            for side, target in (("direct", direct), ("gateway", through)):
                cpu0 = (gw.cpu_s(), cpu_s(engine), cpu_s(me))
                t0 = time.perf_counter()
                samples = await closed_loop(session, target, 64, duration=window_s)
                wall = time.perf_counter() - t0
                done = sum(s.ok for s in samples)
                res["failed"] += len(samples) - done
                res[side].append(done / wall)
                if side == "gateway":
                    res["gw_cpu"] += gw.cpu_s() - cpu0[0]
                    res["sim_cpu"] += cpu_s(engine) - cpu0[1]
                    res["client_cpu"] += cpu_s(me) - cpu0[2]
                    res["gw_requests"] += done
                    res["gw_wall"] += wall
    return res


async def failover(gw: GatewayProcess, kill, key: str, model: str, before_s: float, after_s: float) -> dict:
    """16 clients through the gateway; ``kill()`` (run in a thread) after ``before_s`` seconds."""
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    through = Target(gw.url + "/v1/chat/completions", body(model, 16), auth)
    stop = asyncio.Event()
    async with session_for(16) as session:
        load_started = time.perf_counter()
        load = asyncio.create_task(closed_loop(session, through, 16, stop=stop))
        await asyncio.sleep(before_s)
        killed_at = time.perf_counter()
        killing = asyncio.create_task(asyncio.to_thread(kill))
        await asyncio.sleep(after_s)
        await killing
        stop.set()
        samples = await load
    failed = [s for s in samples if not s.ok]
    # "during the event": requests in flight at the kill or started in the second after it
    during = [s.latency for s in samples if s.end >= killed_at and s.start <= killed_at + 1.0]
    # before: steady state (the first 0.5 s opens the connections)
    before = [s.latency for s in samples if s.start >= load_started + 0.5 and s.end < killed_at]
    after = [s for s in samples if s.start > killed_at + 1.0]
    return {"requests": len(samples), "failed": len(failed), "errors": sorted({s.error for s in failed})[:3],
            "p99_before": pct(before, 99), "p50_before": pct(before, 50), "p99_during": pct(during, 99),
            "max_during": max(during) if during else float("nan"), "during": len(during),
            "after_rps": len(after) / max(1e-9, after_s - 1.0)}


async def revocation(gw: GatewayProcess, owner, model: str, trials: int) -> dict:
    from asgiref.sync import sync_to_async

    from jobs.gateway.services import create_key, revoke_key

    payload = body(model, 1)
    seen, revoked = [], []
    async with session_for(1) as session:
        for _ in range(trials):
            row, secret = await sync_to_async(create_key)(owner, name="revoke-me")
            target = Target(gw.url + "/v1/chat/completions", payload,
                            {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
            t0 = time.perf_counter()
            while True:  # the new key is seen
                sample = await one(session, target)
                if sample.ok:
                    seen.append(time.perf_counter() - t0)
                    break
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"a new key was not accepted within 30 s: {sample.error}")
                await asyncio.sleep(0.01)
            await asyncio.sleep(random.uniform(0.1, 1.1))  # revoke at a random phase of the gateway's check
            t0 = time.perf_counter()
            await sync_to_async(revoke_key)(row)
            while True:
                async with session.post(target.url, data=target.body, headers=target.headers) as response:
                    await response.read()
                    if response.status == 401:
                        revoked.append(time.perf_counter() - t0)
                        break
                if time.perf_counter() - t0 > 30:
                    raise SystemExit("a revoked key was still accepted after 30 s")
                await asyncio.sleep(0.01)
    return {"revoked": revoked, "seen": seen}


# --------------------------------------------------------------------------- main


def verdict(ok: bool) -> str:
    return "meets" if ok else "**misses**"


async def run(args, owner, key: str, sims: dict, gw: GatewayProcess) -> dict:
    async with session_for(1) as session:
        await gw.wait_ready(session)
    load = [os.getloadavg()[0]]
    print("added latency ...", flush=True)
    latency = await added_latency(gw, sims["fast"], key, "fast", args.requests)
    load.append(os.getloadavg()[0])
    print("throughput (engine-like simulator) ...", flush=True)
    ratio = await throughput(gw, sims["engine"], key, "engine", 16, args.window, args.rounds)
    load.append(os.getloadavg()[0])
    print("throughput (zero-delay simulator) ...", flush=True)
    per_core = await throughput(gw, sims["fast"], key, "fast", 2, args.window, args.rounds)
    load.append(os.getloadavg()[0])
    print("failover ...", flush=True)
    replica = sims["replicas"][0].process
    fail = await failover(gw, lambda: (replica.send_signal(signal.SIGKILL), replica.wait(5)), key, "replicas",
                          args.failover_before, args.failover_after)
    load.append(os.getloadavg()[0])
    ssh = None
    if sims.get("ssh") is not None:
        print("SSH node loss ...", flush=True)
        ssh = await failover(gw, sims["ssh"].lose, key, "ssh-spread", args.failover_before, args.failover_after)
        ssh["unreachable_after"] = sims["ssh"].unreachable_after
        load.append(os.getloadavg()[0])
    print("revocation ...", flush=True)
    revoke = await revocation(gw, owner, "fast", args.trials)
    load.append(os.getloadavg()[0])
    return {"latency": latency, "ratio": ratio, "per_core": per_core, "failover": fail, "ssh": ssh,
            "revoke": revoke, "load": load}


def per_core_total(r: dict) -> float:
    f = r["per_core"]
    return (f["gw_cpu"] + f["sim_cpu"] + f["client_cpu"]) / f["gw_wall"] if f["gw_wall"] else float("nan")


def ssh_rows(args, fo: dict | None) -> list[str]:
    if fo is None:
        return []
    seen = fo["unreachable_after"]
    seen_text = f"marked unreachable by the reconciler after {seen:.1f} s" if seen else "never marked unreachable"
    return [
        f"| node loss: replicas on the local node and an SSH node, 16 clients, the SSH node's sshd and engine "
        f"killed ({fo['requests']} requests over {args.failover_before + args.failover_after:g} s; {seen_text}) | "
        f"p99 before the loss {ms(fo['p99_before'])} | p99 during the event {ms(fo['p99_during'])} "
        f"(max {ms(fo['max_during'])}, {fo['during']} requests) | **{fo['failed']} failed** | 0 failed: "
        f"{verdict(fo['failed'] == 0)} |"
    ]


def report(args, r: dict) -> str:
    lat = r["latency"]
    nd, ng = lat[("latency", "direct")], lat[("latency", "gateway")]
    sd, sg = lat[("ttft", "direct")], lat[("ttft", "gateway")]
    added_p50, added_ttft = ng[0] - nd[0], sg[0] - sd[0]
    q = r["ratio"]
    direct_rps, gw_rps = statistics.mean(q["direct"]), statistics.mean(q["gateway"])
    # each gateway window against the direct window just before it: robust to the machine's drift
    paired = [g / d for d, g in zip(q["direct"], q["gateway"], strict=True)]
    ratio = statistics.median(paired)
    f = r["per_core"]
    fast_ratio = statistics.mean(f["gateway"]) / statistics.mean(f["direct"])
    per_core = f["gw_requests"] / f["gw_cpu"] if f["gw_cpu"] else float("nan")
    total_cpu = f["gw_cpu"] + f["sim_cpu"] + f["client_cpu"]
    share = f["gw_cpu"] / total_cpu if total_cpu else float("nan")
    cores_used = f["gw_cpu"] / f["gw_wall"] if f["gw_wall"] else float("nan")
    fo = r["failover"]
    rv = r["revoke"]["revoked"]
    seen = r["revoke"]["seen"]
    load = r["load"]
    print(f"added p50 {added_p50 * 1000:.3f} ms, TTFT {added_ttft * 1000:.3f} ms; ratio {ratio:.3f} "
          f"(zero-delay {fast_ratio:.3f}); {per_core:.0f} req/s per gateway core, share {share:.2f}; "
          f"failover {fo['failed']} failed of {fo['requests']}, p99 during {fo['p99_during'] * 1000:.1f} ms; "
          f"revoke median {statistics.median(rv):.3f} s max {max(rv):.3f} s; load {load}", flush=True)
    if r.get("ssh"):
        print(f"SSH node loss: {r['ssh']}", flush=True)
    rows = [
        "| figure | direct to the simulator | through the gateway | result | goal |",
        "|---|---|---|---|---|",
        f"| non-streaming latency, concurrency 1 ({nd[2]} requests each), p50 / p99 | {ms(nd[0])} / {ms(nd[1])} | "
        f"{ms(ng[0])} / {ms(ng[1])} | **+{added_p50 * 1000:.2f} ms** at p50, +{(ng[1] - nd[1]) * 1000:.2f} ms "
        f"at p99 | p50 added ≤ 1 ms: {verdict(added_p50 <= 0.001)} |",
        f"| streaming time to first token, concurrency 1 ({sd[2]} requests each), p50 / p99 | {ms(sd[0])} / "
        f"{ms(sd[1])} | {ms(sg[0])} / {ms(sg[1])} | **+{added_ttft * 1000:.2f} ms** at p50, "
        f"+{(sg[1] - sd[1]) * 1000:.2f} ms at p99 | p50 added ≤ 1 ms: {verdict(added_ttft <= 0.001)} |",
        f"| throughput at concurrency 64, engine-like simulator (`{ENGINE_ARGS_TEXT}`, 16 output tokens) | "
        f"{direct_rps:.0f} req/s | {gw_rps:.0f} req/s | **{ratio:.2f}** of direct (median of {len(paired)} paired "
        f"windows, {min(paired):.2f}–{max(paired):.2f}) | ≥ 0.85: "
        f"{verdict(ratio >= 0.85)} |",
        f"| throughput at concurrency 64, zero-delay simulator (2 output tokens: "
        f"the CPU, shared by client, simulator and gateway, is the limit) | "
        f"{statistics.mean(f['direct']):.0f} req/s | {statistics.mean(f['gateway']):.0f} req/s | "
        f"{fast_ratio:.2f} of direct | (no goal: three processes share {os.cpu_count()} cores) |",
        f"| requests per second per gateway CPU core (zero-delay, {f['gw_requests']} requests over "
        f"{f['gw_cpu']:.1f} CPU s of the gateway process) | | {per_core:.0f} req/s per core | **{per_core:.0f}** "
        f"| ≥ 500: {verdict(per_core >= 500)} |",
        f"| gateway's CPU share over those windows (gateway ÷ gateway + simulator + client CPU time) | | "
        f"{share:.0%} (the gateway used {cores_used:.2f} cores on average) | {share:.0%} | reported |",
        f"| failover: 2 replicas, 16 clients, `kill -9` of one ({fo['requests']} requests over "
        f"{args.failover_before + args.failover_after:g} s) | p99 before the kill {ms(fo['p99_before'])} | "
        f"p99 during the event {ms(fo['p99_during'])} (max {ms(fo['max_during'])}, {fo['during']} requests) | "
        f"**{fo['failed']} failed** | 0 failed: {verdict(fo['failed'] == 0)} |",
        *ssh_rows(args, r.get("ssh")),
        f"| revocation to the first 401 ({len(rv)} trials, a request every 10 ms) | | median "
        f"{statistics.median(rv):.2f} s, max {max(rv):.2f} s | **{max(rv):.2f} s** max | ≤ 2 s: "
        f"{verdict(max(rv) <= 2.0)} |",
    ]
    body_text = (
        "The gateway runs as its own process (`manage.py gateway`) on a throw-away console database; engines "
        "are simulator processes; the client is an asyncio + aiohttp closed loop in the bench's process "
        "(`bench/gateway.py`). Every figure is against a baseline measured in the same run: the same requests "
        "sent directly to the simulator, in alternating blocks (latency) or windows (throughput, "
        f"{args.rounds} × {args.window:g} s each side). Load average (1 min) during the run: "
        f"{' → '.join(f'{v:.2f}' for v in load)}; the machine was shared with other work, so the absolute "
        "figures are noisy and the differences and ratios are what counts (the three processes together got "
        f"{per_core_total(r):.2f} of the {os.cpu_count()} cores in the per-core windows).\n\n"
        + "\n".join(rows) + "\n\n"
        "Latency: a zero-delay simulator (`--ttft-ms 0 --tpot-ms 0 --batch-slowdown 0`), 8 output tokens; "
        "time to first token is measured to the first chunk carrying generated text. "
        f"Failover: no reconciler runs, so the killed instance stays `running` in the database and only the "
        f"gateway's retries and passive ejection (5 s, then retried and ejected again) protect the clients; "
        f"\"during the event\" means requests in flight at the kill or started in the second after it; "
        f"after it the surviving replica served {fo['after_rps']:.0f} req/s"
        + (f"; errors: {fo['errors']}" if fo["errors"] else "") + ". "
        f"Revocation goes through `jobs.gateway.services.revoke_key` (what `POST api-keys/{{id}}/revoke/` "
        f"calls), timed from before the write; the gateway checks the database every 0.5 s. A new key was "
        f"accepted after a median {statistics.median(seen):.2f} s (max {max(seen):.2f} s)."
        + ("" if not r.get("ssh") else
           " Node loss: the job's two replicas were placed (`spread`) and launched by the product's reconciler "
           "(`jobs.reconciler.reconcile_job`, driven by the bench), one on the local node and one over SSH on a "
           "real sshd on loopback (`tests/sshd.py`), simulator `--ttft-ms 20 --tpot-ms 2`, 16 output tokens; the "
           "loss kills that sshd with every session and the engine (SIGKILL), then the bench drives the "
           "reconciler until it marks the node `unreachable` (the gateway follows within a second); the replica "
           "is not moved within the node-loss grace (20 s), so the local replica serves alone.")
        + f" Database: {DATABASE_TEXT}."
    )
    return body_text


DATABASE_TEXT = "SQLite in a fresh data directory (the embedded profile)"
ENGINE_ARGS = ("--ttft-ms", "50", "--tpot-ms", "5")
ENGINE_ARGS_TEXT = " ".join(ENGINE_ARGS)
FAST_ARGS = ("--ttft-ms", "0", "--tpot-ms", "0", "--batch-slowdown", "0")
REPLICA_ARGS = ("--ttft-ms", "20", "--tpot-ms", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, shorter windows, 5 revocations")
    parser.add_argument("--requests", type=int, default=2000, help="requests per side for the latency figures")
    parser.add_argument("--window", type=float, default=4.0, help="seconds of each throughput window")
    parser.add_argument("--rounds", type=int, default=5, help="throughput windows per side")
    parser.add_argument("--trials", type=int, default=20, help="revocation trials")
    parser.add_argument("--failover-before", type=float, default=2.0)
    parser.add_argument("--failover-after", type=float, default=8.0,
                        help="seconds of load after the kill (over 5 s: the ejection expires once)")
    parser.add_argument("--ssh", action=argparse.BooleanOptionalAction, default=True,
                        help="also lose an SSH node (a real sshd on loopback) under load")
    parser.add_argument("--database-url", help="a throw-away PostgreSQL database instead of SQLite")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.window, args.rounds, args.trials = 400, 2.0, 1, 5
        args.failover_before, args.failover_after = 1.0, 6.0

    setup_django(args.database_url)
    if args.database_url:
        global DATABASE_TEXT
        DATABASE_TEXT = "PostgreSQL (--database-url)"
    work = Path(tempfile.mkdtemp(prefix="boom-gateway-bench-"))
    sims: dict = {}
    gw = None
    try:
        sims["fast"] = Simulator(work, "fast", "fast", *FAST_ARGS)
        sims["engine"] = Simulator(work, "engine", "engine", *ENGINE_ARGS)
        sims["replicas"] = [Simulator(work, f"replica-{i}", "replicas", *REPLICA_ARGS) for i in range(2)]
        owner, key, version, _ = make_rows({"fast": [sims["fast"].port], "engine": [sims["engine"].port],
                                            "replicas": [s.port for s in sims["replicas"]]})
        if args.ssh:
            from tests.sshd import sshd_available

            if sshd_available():
                print("placing the SSH case's replicas through the reconciler ...", flush=True)
                sims["ssh"] = SshCase(work, version)
            else:
                print("no sshd: the SSH node case is skipped", flush=True)
        gw = GatewayProcess(work)
        results = asyncio.run(run(args, owner, key, sims, gw))
    finally:
        if gw is not None:
            gw.stop()
        for sim in (sims.get("fast"), sims.get("engine"), *sims.get("replicas", [])):
            if sim is not None:
                sim.stop()
        if sims.get("ssh") is not None:
            sims["ssh"].cleanup()
    text = report(args, results)
    if not args.no_write:
        write_section("Gateway", text)


if __name__ == "__main__":
    main()
