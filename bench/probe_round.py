"""Benchmark: one probe round over N = 1, 10, 50 SSH nodes (each a real sshd on loopback with fake
nvidia-smi and npu-smi printing real captures), as a ratio to the round of one node measured in the
same run. Goal: 50 nodes in under 3 times the time of one.

Rounds are measured cold (new SSH connections: key exchange and authentication) and warm
(connections reused from the previous round, as the periodic probe does).
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, setup_django, write_section  # noqa: E402


def main(sizes=(1, 10, 50), repeat: int = 3):
    setup_django()
    from django.conf import settings

    from nodes import services
    from nodes.models import Node
    from nodes.probes.ssh import POOL
    from tests.conftest import FAKE_BIN
    from tests.sshd import SshdNode

    settings.CONSOLE_PROBE_CONCURRENCY = 50
    path = f"{FAKE_BIN}:/usr/local/bin:/usr/bin:/bin"
    daemons = [SshdNode(env={"PATH": path}).start() for _ in range(max(sizes))]
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
            cold, warm = [], []
            for _ in range(repeat):
                POOL.close_all()
                start = time.perf_counter()
                finished = services.probe_round(nodes[:size])
                cold.append(time.perf_counter() - start)
                assert all(finished.values())
                start = time.perf_counter()
                services.probe_round(nodes[:size])
                warm.append(time.perf_counter() - start)
            online = Node.objects.filter(pk__in=nodes[:size], status="online").count()
            rows[size] = (median(cold), median(warm), online)
    finally:
        POOL.close_all()
        for daemon in daemons:
            daemon.cleanup()
    base_cold, base_warm, _ = rows[sizes[0]]
    lines = ["| nodes | round, new connections | ratio to 1 node | round, reused connections | ratio to 1 node "
             "| nodes online |", "|---|---|---|---|---|---|"]
    for size, (cold, warm, online) in rows.items():
        lines.append(f"| {size} | {cold:.2f} s | {cold / base_cold:.2f}× | {warm:.2f} s | {warm / base_warm:.2f}× "
                     f"| {online}/{size} |")
    verdict = rows[max(sizes)][0] / base_cold
    body = ("Each node is its own sshd on 127.0.0.1 with 8 fake GPUs and 8 fake NPUs (real captures); "
            f"pool of {settings.CONSOLE_PROBE_CONCURRENCY} threads; median of {repeat} rounds.\n\n"
            + "\n".join(lines) + f"\n\nGoal: 50 nodes in under 3× the time of one (cold): **{verdict:.2f}×**. "
            "Remote commands start through root's bash, whose `.bashrc` runs `pyenv init` on this machine "
            "(about 150 ms of CPU per probe), and key exchange is CPU-bound: on 2 cores, most of the "
            "50-node round is CPU, not waiting.")
    print(body)
    write_section("Probe round over SSH", body)


if __name__ == "__main__":
    main()
