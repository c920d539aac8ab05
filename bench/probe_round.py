"""Benchmark: one probe round over N = 1, 10, 50 SSH nodes (each a real sshd on loopback with fake
nvidia-smi and npu-smi printing real captures), as a ratio to the round of one node measured in the
same run. Goal: 50 nodes in under 3 times the time of one.

Rounds are measured cold (new SSH connections: key exchange and authentication) and warm
(connections reused from the previous round, as the periodic probe does).
"""

import os
import pwd
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, setup_django, write_section  # noqa: E402

BENCH_USER = "boom-bench"


def bench_user() -> str | None:
    """A plain login (Debian's default shell start-up) for the simulated nodes, created when we are root.

    Root's shell on these machines runs ``pyenv init`` at every SSH command (about 150 ms of CPU), which
    real inference nodes do not do and which all 50 simulated nodes would spend on the console's 2 cores.
    """
    if os.geteuid() != 0:
        try:
            pwd.getpwnam(BENCH_USER)
            return BENCH_USER
        except KeyError:
            return None
    try:
        pwd.getpwnam(BENCH_USER)
    except KeyError:
        if subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", BENCH_USER],
                          capture_output=True).returncode != 0:
            return None
    # A new account is locked ("!"), which sshd refuses even for keys; "*" allows keys and no password.
    subprocess.run(["usermod", "-p", "*", BENCH_USER], capture_output=True, check=False)
    return BENCH_USER


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(sizes=(1, 10, 50), repeat: int = 3, write: bool = True):
    setup_django()
    from django.conf import settings

    from nodes import services
    from nodes.models import Node
    from nodes.transports.ssh import POOL
    from tests.conftest import FAKE_BIN
    from tests.sshd import SshdNode

    settings.CONSOLE_PROBE_CONCURRENCY = 50
    path = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin"
    user = bench_user()
    daemons = []
    for _ in range(max(sizes)):
        daemon = SshdNode(env={"PATH": path})
        daemon.start()
        if user:
            daemon.username = user
            # sshd reads authorized_keys as that user: let it in to the node's directory.
            daemon.dir.chmod(0o755)
            (daemon.dir / "authorized_keys").chmod(0o644)
        daemons.append(daemon)
    try:
        nodes = []
        for i, daemon in enumerate(daemons):
            credential = services.create_credential(name=f"key-{i}", username=daemon.username,
                                                    private_key=daemon.client_key_pem, passphrase=None)
            nodes.append(Node.objects.create(name=f"bench-{i:02d}", address="127.0.0.1", transport="ssh",
                                             ssh_port=daemon.port, credential=credential).pk)
        services.probe_round(nodes[:1])  # pins host keys of the first; warms Django and imports
        rows = {}
        for size in sizes:
            cold, warm, cpu = [], [], []
            for _ in range(repeat):
                POOL.close_all()
                start = time.perf_counter()
                finished = services.probe_round(nodes[:size])
                cold.append(time.perf_counter() - start)
                assert all(finished.values())
                start, cpu_start = time.perf_counter(), cpu_seconds()
                services.probe_round(nodes[:size])
                warm.append(time.perf_counter() - start)
                cpu.append((cpu_seconds() - cpu_start) / size)
            online = Node.objects.filter(pk__in=nodes[:size], status="online").count()
            rows[size] = (median(cold), median(warm), online, median(cpu))
    finally:
        POOL.close_all()
        for daemon in daemons:
            daemon.cleanup()
    base_cold, base_warm, _, _ = rows[sizes[0]]
    lines = ["| nodes | round, new connections | ratio to 1 node | round, reused connections | ratio to 1 node "
             "| console CPU per probe (reused) | nodes online |", "|---|---|---|---|---|---|---|"]
    for size, (cold, warm, online, cpu) in rows.items():
        lines.append(f"| {size} | {cold:.2f} s | {cold / base_cold:.2f}× | {warm:.2f} s | {warm / base_warm:.2f}× "
                     f"| {cpu * 1000:.0f} ms | {online}/{size} |")
    verdict = rows[max(sizes)][0] / base_cold
    body = ("Each node is its own sshd on 127.0.0.1 with 8 fake GPUs and 8 fake NPUs (real captures; the fake "
            "nvidia-smi is a Python script), logged in as "
            f"`{user or 'the current user'}`; pool of {settings.CONSOLE_PROBE_CONCURRENCY} threads; median of "
            f"{repeat} rounds. The 'nodes' run on the same 2 cores as the console, so each round also pays every "
            "node's own work (sshd, bash, the tools); the console's own CPU per probe is measured separately.\n\n"
            + "\n".join(lines) + f"\n\nGoal: 50 nodes in under 3× the time of one (cold): **{verdict:.2f}×**. "
            "On loopback every simulated node's work (key exchange, sshd, bash, the Python fake nvidia-smi) "
            "competes for the same 2 cores as the console, so the round grows with the total CPU of all nodes; "
            "on a real cluster that work runs on the nodes, and the console's share is its CPU per probe "
            "(the CPU column) divided over its cores.")
    print(body)
    if write:
        write_section("Probe round over SSH", body)


if __name__ == "__main__":
    if "--quick" in sys.argv:
        main(sizes=(1, 10), repeat=1, write=False)
    else:
        main()
