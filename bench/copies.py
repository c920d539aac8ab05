"""Benchmark: copying a 2 GiB model version between two loopback sshd nodes through the console, against
``scp`` between the same two accounts in the same run; the console's CPU per GiB; and resuming a copy
whose worker was killed at 50 % against a fresh copy.

The version (four 512 MiB safetensors shards of random bytes and a config.json) is imported and verified
on node A. Then, each timed in turn:

* ``scp`` node to node: A's files to B's account in one SSH hop (what an operator types when the nodes
  share a key); ``scp -3``: the same through this machine (two hops, like the console);
* the console's copy (``services.copies.request_copy`` + ``services.transfer.run_copy``: two SSH pipes per
  file, 4 files at once, then hashing every written file on B against the manifest): the streaming
  phase's rate (to compare with scp) and the time to ``ready`` (streaming + verification);
* a copy run in a child process that is SIGKILLed once half of the bytes are written, then asked for
  again: time from the new request to ``ready`` against the fresh copy's.

Everything is on one machine: the files are in the page cache, and the SSH encryption on both ends and in
the console competes for the same cores (scp's too).
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, setup_django, write_section  # noqa: E402

CHUNK = 64 << 20
WARM_BYTES = 3 << 30  # memory touched before each timed run (prefault): more than a copy writes


def write_version(directory: Path, shards: int, shard_bytes: int) -> None:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "torch_dtype": "bfloat16"}))
    block = os.urandom(CHUNK)
    for i in range(shards):
        header = json.dumps({"w": {"dtype": "U8", "shape": [shard_bytes], "data_offsets": [0, shard_bytes]}})
        header = header.encode() + b" " * (-len(header) % 8)
        with open(directory / f"model-{i + 1:05d}-of-{shards:05d}.safetensors", "wb") as fh:
            fh.write(len(header).to_bytes(8, "little") + header)
            left = shard_bytes
            n = 0
            while left:
                part = block[n % 13:] + block[: n % 13]
                fh.write(part[:left])
                left -= min(left, len(part))
                n += 1


def prefault(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh memory, then free it, just before a timed run.

    This workplace's VMs hand freed memory back to their host (virtio-balloon free page reporting, and DAMON
    paging out idle pages): the next use of such a page faults it in from the host, measured at about 2.4 s
    of CPU a GiB (14 GiB touched in 33.6 s of system time). A copy writes its 2 GiB into new page-cache pages,
    so whichever tool happened to get cold pages paid up to 5 s more (the console's first copy of every
    session was always the slowest: 9.4 s against 6.6-7.1 s, its receiving `cat` 6.7 s of CPU against 1.6 s
    after this). Touching them first, for every tool alike, gives each run warm pages."""
    import mmap

    block = mmap.mmap(-1, nbytes)
    try:
        for offset in range(0, nbytes, mmap.PAGESIZE):
            block[offset] = 1
    finally:
        block.close()


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its waited-for children (the ``ssh`` clients)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def ssh_config(path: Path, nodes: dict[str, object]) -> None:
    lines = []
    for name, daemon in nodes.items():
        key = path.parent / f"{name}.key"
        key.write_text(daemon.client_key_pem)
        key.chmod(0o600)
        lines += [f"Host {name}", "  HostName 127.0.0.1", f"  Port {daemon.port}", f"  User {daemon.username}",
                  f"  IdentityFile {key}", "  StrictHostKeyChecking no", "  UserKnownHostsFile /dev/null",
                  "  LogLevel ERROR", ""]
    path.write_text("\n".join(lines))


def time_scp(config: Path, source: Path, target: Path, *, through_here: bool, cipher: str | None = None) -> float:
    """``scp`` as an operator types it (OpenSSH's default cipher), or with ``cipher``."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    files = sorted(p.name for p in source.iterdir())
    options = ["-O", "-q", "-F", str(config), *(["-c", cipher] if cipher else [])]
    if through_here:
        argv = ["scp", *options, "-3", *(f"node-a:{source}/{f}" for f in files), f"node-b:{target}/"]
    else:  # A's account sends to B's: on this machine, A's files are these files
        argv = ["scp", *options, *(str(source / f) for f in files), f"node-b:{target}/"]
    prefault(WARM_BYTES)
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - start


def time_relay(config: Path, source: Path, target: Path, parallel: int) -> float:
    """The bare relay through this machine, without the console: ``ssh A cat <file> | ssh B 'cat > <file>'`` for
    every file, ``parallel`` at once, with the console's ciphers. What any copy through the console costs at
    least: every byte decrypted and encrypted again here, on top of the nodes' own SSH work."""
    import shlex

    from nodes.transports.ssh import openssh

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    cipher = openssh.ciphers("auto")
    ssh = ["ssh", "-F", str(config), *(["-o", f"Ciphers={cipher}"] if cipher else [])]
    files = sorted(source.iterdir(), key=lambda p: -p.stat().st_size)
    pipelines = [f"{shlex.join([*ssh, 'node-a', shlex.join(['cat', str(f)])])} | "
                 f"{shlex.join([*ssh, 'node-b', 'cat > ' + shlex.quote(str(target / f.name))])}" for f in files]
    prefault(WARM_BYTES)
    start = time.perf_counter()
    running: list[subprocess.Popen] = []
    for line in pipelines:
        while len(running) >= parallel:
            running.pop(0).wait()
        running.append(subprocess.Popen(["bash", "-o", "pipefail", "-c", line]))
    for proc in running:
        proc.wait()
    elapsed = time.perf_counter() - start
    assert sum(f.stat().st_size for f in target.iterdir()) == sum(f.stat().st_size for f in files)
    return elapsed


def time_rsync(config: Path, source: Path, target: Path) -> float:
    """``rsync`` A's files -> B over one SSH hop (the direct option when the nodes share a key)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    prefault(WARM_BYTES)
    start = time.perf_counter()
    subprocess.run(["rsync", "-a", "--whole-file", "-e", f"ssh -F {config}", f"{source}/", f"node-b:{target}/"],
                   check=True)
    return time.perf_counter() - start


def console_copy(version, node, path: Path, client: str = "auto", node_program: bool = True) -> dict:
    """One copy through the console; ``client``: CONSOLE_COPY_SSH_CLIENT (auto: OpenSSH's ssh for the shards);
    ``node_program=False``: ``cat`` and receive_file.sh on the nodes for every file, as before stream_file.py."""
    from django.conf import settings

    from models_registry.inspection import remote
    from models_registry.models import CopyStatusChange, ModelCopy
    from models_registry.services import copies, transfer

    settings.CONSOLE_COPY_SSH_CLIENT = client
    threshold = remote.STREAM_PROGRAM_MIN_BYTES
    remote.STREAM_PROGRAM_MIN_BYTES = threshold if node_program else 1 << 62
    shutil.rmtree(path, ignore_errors=True)
    ModelCopy.objects.filter(version=version, node=node).delete()
    prefault(WARM_BYTES)
    own, children = cpu_seconds()
    start = time.perf_counter()
    copy = copies.request_copy(version, node, path=str(path))
    transfer.run_copy(copy.pk)  # eager Celery ran it at the commit already; then this is a no-op
    elapsed = time.perf_counter() - start
    own_after, children_after = cpu_seconds()
    settings.CONSOLE_COPY_SSH_CLIENT = "auto"
    remote.STREAM_PROGRAM_MIN_BYTES = threshold
    cpu, cpu_children = own_after - own, children_after - children
    copy.refresh_from_db()
    assert copy.status == "ready", copy.status_detail
    times = {row.to_status: row.time for row in CopyStatusChange.objects.filter(copy=copy)}
    streaming = (times["verifying"] - times["copying"]).total_seconds()
    return {"total": elapsed, "streaming": streaming, "cpu": cpu, "cpu_children": cpu_children, "copy": copy}


def child(copy_id: int) -> None:
    """Run one copy in this process (the parent kills it half-way)."""
    import django

    django.setup()
    from models_registry.services import transfer

    transfer.run_copy(copy_id)


def killed_and_resumed(version, node, path: Path, data_dir: Path) -> dict:
    from django.conf import settings
    from django.db import connection

    from models_registry.models import ModelCopy
    from models_registry.services import copies, transfer

    shutil.rmtree(path, ignore_errors=True)
    ModelCopy.objects.filter(version=version, node=node).delete()
    from models_registry import enqueue

    queue = enqueue.copy_version
    enqueue.copy_version = lambda copy_id: None  # the child process runs this copy, not eager Celery
    try:
        copy = copies.request_copy(version, node, path=str(path))
    finally:
        enqueue.copy_version = queue
    connection.close()
    prefault(WARM_BYTES)
    env = dict(os.environ, CONSOLE_DATA_DIR=str(data_dir))
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(copy.pk)], env=env)
    size = copy.size_bytes
    done = 0
    while proc.poll() is None:
        done = ModelCopy.objects.filter(pk=copy.pk).values_list("bytes_done", flat=True).first() or 0
        if done >= size // 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    killed_at = done / size
    # The dead worker's copy stays ``copying``: a new request starts it again once it is stale.
    settings.CONSOLE_COPY_STALE_S = 0
    prefault(WARM_BYTES)
    time.sleep(0.5)
    start = time.perf_counter()
    copy = ModelCopy.objects.get(pk=copy.pk)
    copies.request_copy(version, node)
    transfer.run_copy(copy.pk)
    elapsed = time.perf_counter() - start
    copy.refresh_from_db()
    assert copy.status == "ready", copy.status_detail
    return {"total": elapsed, "killed_at": killed_at, "skipped": copy.files_skipped, "copied": copy.files_copied}


def main(shards: int, shard_mib: int, repeat: int, write: bool, parallel: int) -> None:
    os.environ["CONSOLE_COPY_PARALLEL"] = str(parallel)
    data_dir = setup_django()
    from models_registry.models import Model
    from nodes import services as node_services
    from nodes.models import Node
    from nodes.transports.ssh import BULK_POOL, POOL
    from tests.models_registry import verified_version
    from tests.sshd import SshdNode

    work = Path(tempfile.mkdtemp(prefix="boom-bench-copies-"))
    for name in ("node-a", "node-b"):
        (work / f"home-{name}").mkdir()
    source = work / "root-a" / "model" / "v1"
    write_version(source, shards, shard_mib << 20)
    subprocess.run(["cat", *map(str, source.iterdir())], stdout=subprocess.DEVNULL, check=True)
    # HOME: an empty directory per node: this machine's root ~/.bashrc runs `pyenv init` (about 0.2 s) in every
    # SSH command's shell, once per file for the console's pipes and once per run for scp; a node's does not.
    daemons = {name: SshdNode(env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work / f"home-{name}")})
               .start() for name in ("node-a", "node-b")}
    try:
        nodes = {}
        for name, daemon in daemons.items():
            credential = node_services.create_credential(name=f"{name}-key", username=daemon.username,
                                                         private_key=daemon.client_key_pem, passphrase=None)
            # Pinned, as the first probe pins a node's host key (bulk pipes never trust a first contact).
            nodes[name] = Node.objects.create(name=name, address="127.0.0.1", transport="ssh", ssh_port=daemon.port,
                                              credential=credential, host_key=daemon.host_key_line)
        model = Model.objects.create(name="bench-copy")
        version = verified_version(model, nodes["node-a"], source)
        size = version.size_bytes
        gib = size / (1 << 30)
        config = work / "ssh_config"
        ssh_config(config, daemons)
        target = work / "root-b" / "model" / "v1"

        from nodes.transports.ssh import openssh

        console_cipher = (openssh.ciphers("auto") or "").split(",")[0] or None
        rows = {"scp": [], "scp_same_cipher": [], "scp3": [], "rsync": [], "relay": [], "stream": [], "ready": [],
                "cpu": [], "cpu_ssh": [],
                "paramiko": [], "paramiko_cpu": [], "with_cat": []}
        for _ in range(repeat):
            rows["scp"].append(time_scp(config, source, work / "scp-b", through_here=False))
            rows["scp_same_cipher"].append(time_scp(config, source, work / "scp-b", through_here=False,
                                                    cipher=console_cipher) if console_cipher else 0.0)
            rows["rsync"].append(time_rsync(config, source, work / "rsync-b") if shutil.which("rsync") else 0.0)
            rows["scp3"].append(time_scp(config, source, work / "scp3-b", through_here=True))
            rows["relay"].append(time_relay(config, source, work / "relay-b", parallel))
            result = console_copy(version, nodes["node-b"], target)
            rows["stream"].append(result["streaming"])
            rows["ready"].append(result["total"])
            rows["cpu"].append(result["cpu"])
            rows["cpu_ssh"].append(result["cpu_children"])
            rows["with_cat"].append(console_copy(version, nodes["node-b"], target, node_program=False)["streaming"])
            old_way = console_copy(version, nodes["node-b"], target, client="paramiko")
            rows["paramiko"].append(old_way["streaming"])
            rows["paramiko_cpu"].append(old_way["cpu"])
            print(f"scp {rows['scp'][-1]:.2f} s, scp -c {console_cipher} {rows['scp_same_cipher'][-1]:.2f} s, "
                  f"rsync {rows['rsync'][-1]:.2f} s, scp -3 {rows['scp3'][-1]:.2f} s, "
                  f"relay {rows['relay'][-1]:.2f} s, "
                  "console streaming "
                  f"{result['streaming']:.2f} s (with cat on the nodes {rows['with_cat'][-1]:.2f} s), "
                  f"to ready {result['total']:.2f} s, cpu {result['cpu']:.2f} s "
                  f"+ ssh {result['cpu_children']:.2f} s; paramiko streaming {old_way['streaming']:.2f} s, "
                  f"cpu {old_way['cpu']:.2f} s", flush=True)
        resumed = killed_and_resumed(version, nodes["node-b"], work / "root-b" / "resumed", data_dir)
        print(resumed, flush=True)
    finally:
        POOL.close_all()
        BULK_POOL.close_all()
        for daemon in daemons.values():
            daemon.cleanup()
        shutil.rmtree(work, ignore_errors=True)

    scp, same, scp3, stream, ready, rsync, old_way, relay, with_cat = (median(rows[k]) for k in (
        "scp", "scp_same_cipher", "scp3", "stream", "ready", "rsync", "paramiko", "relay", "with_cat"))
    mib = size / (1 << 20)
    ratio = scp / stream
    per_file_note = ("" if resumed["skipped"] else
                     f"\n  Resuming is per file: with {min(parallel, shards)} shards streaming at once, none was "
                     "complete when the copy was killed, so the resume wrote everything again (with 16 shards of "
                     "128 MiB, 2026-12-05, it kept 8 and was ready in 0.59 of a fresh copy's time).")
    same_row = (f"| `scp -c {console_cipher}` A's files -> B (one SSH hop, the console's cipher) | {same:.2f} s | "
                f"{mib / same:.0f} MiB/s |\n" if same else "")
    same_note = (f";\n  against `scp -c {console_cipher}` (the same cipher as the console's): **{same / stream:.2f}**, "
                 "run by run " + ", ".join(f"{a / b:.2f}" for a, b in zip(rows["scp_same_cipher"], rows["stream"],
                                                                          strict=True)) if same else "")
    body = f"""
`python bench/copies.py --parallel {parallel}`: a version of {shards} safetensors shards of {shard_mib} MiB
(random bytes) and a config.json, {gib:.2f} GiB in all, imported and verified on node A (a real sshd on
loopback) and copied to node B (another sshd, its own model root), median of {repeat} runs, each tool in turn.

| path | time | rate |
|---|---|---|
| `scp` A's files -> B (one SSH hop, OpenSSH's default cipher; the baseline) | {scp:.2f} s | {mib / scp:.0f} MiB/s |
{same_row}| `rsync -a --whole-file` A -> B (one SSH hop) | {rsync:.2f} s | {mib / rsync if rsync else 0:.0f} MiB/s |
| `scp -3` A -> this machine -> B (two hops, like the console) | {scp3:.2f} s | {mib / scp3:.0f} MiB/s |
| bare relay through this machine: `ssh A cat | ssh B 'cat >'`, {parallel} files at once (no console) | \
{relay:.2f} s | {mib / relay:.0f} MiB/s |
| console copy, streaming (default: `ssh` pipes for the shards, {parallel} at once) | {stream:.2f} s | \
{mib / stream:.0f} MiB/s |
| console copy, streaming, with `cat` and `receive_file.sh` on the nodes for the shards too (before \
`stream_file.py`) | {with_cat:.2f} s | {mib / with_cat:.0f} MiB/s |
| console copy, request to `ready` (streaming + hashing every file on B) | {ready:.2f} s | {mib / ready:.0f} MiB/s |
| console copy, streaming over paramiko only (`CONSOLE_COPY_SSH_CLIENT=paramiko`) | {old_way:.2f} s | \
{mib / old_way:.0f} MiB/s |

- Streaming rate against `scp` node to node, as an operator types it: **{ratio:.2f}** (goal: at least 0.8); run
  by run {", ".join(f"{a / b:.2f}" for a, b in zip(rows["scp"], rows["stream"], strict=True))}{same_note};
  against `scp -3`: {scp3 / stream:.2f}; paramiko only: {scp / old_way:.2f} of `scp`.
- **The cipher is much of it.** `scp` takes OpenSSH's first choice, ChaCha20-Poly1305; the console offers
  AES-GCM first on a CPU with AES instructions (`openssh.ciphers("auto")`). At the same cipher, one hop
  (`scp`) against two (A to this machine, this machine to B: every byte encrypted and decrypted twice, by
  processes that share these 2 cores with both nodes' sshd) is the gap. On a cluster the nodes' work is on
  the nodes, and the console's part (two `ssh` clients a stream) runs on as many cores as streams.
- **Against the bare relay** (the same two hops with nothing of the console's: any copy that goes through
  the console, as the issue asks, with no key between the nodes, pays at least this): **{relay / stream:.2f}**;
  the relay reaches {scp / relay:.2f} of `scp` in this run. The console is faster than the bare relay: 1 MiB
  pipes and `splice(2)` here, and on the nodes `programs/stream_file.py` (1 MiB pipes, splice between file and
  pipe) in place of `cat` for the shards: the same copy with `cat` on the nodes took {with_cat / stream:.2f}
  times as long (run by run {", ".join(f"{a / b:.2f}" for a, b in zip(rows["with_cat"], rows["stream"],
                                                                        strict=True))}).
- Before each timed run, of every tool, 3 GiB of memory is touched and freed (`prefault`): this VM hands
  freed memory back to its host (virtio-balloon free page reporting, DAMON paging out idle pages), and
  faulting it in again costs about 2.4 s of CPU a GiB (14 GiB touched: 33.6 s of system time). Without it,
  whichever tool wrote its 2 GiB into cold pages paid up to 5 s more: the console's first copy was always
  the slowest (9.4 s against 6.6-7.1 s), its receiving `cat` using 6.7 s of CPU against 1.6 s.
- Between the two `ssh` clients of a shard the console moves the bytes with `splice(2)`, pipe to pipe in
  the kernel: they no longer pass through its memory (its CPU per GiB: 0.41 s before, with read and write).
- Console CPU per GiB (user + system): {median(rows['cpu']) / gib:.2f} s in the console's process and
  {median(rows['cpu_ssh']) / gib:.2f} s in its `ssh` clients (the decryption of the source stream and the
  encryption of the target stream, in C); paramiko only: {median(rows['paramiko_cpu']) / gib:.2f} s, all in the
  console's process (the same work in Python, packet by packet).
- Resume: a copy whose worker was SIGKILLed at {resumed['killed_at']:.0%} of the bytes, asked for again, was
  `ready` in {resumed['total']:.2f} s against {ready:.2f} s for a fresh copy ({resumed['total'] / ready:.2f} of it):
  {resumed['skipped']} file(s) found complete on B were hashed and kept, {resumed['copied']} written again
  (a partial file starts from its beginning).{per_file_note}
"""
    print(body)
    if write:
        write_section("Model copies between nodes", body)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up (sshd, files) on a kill
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--shard-mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4, help="files streamed at once (CONSOLE_COPY_PARALLEL)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    main(args.shards, args.shard_mib, args.repeat, not args.no_write, args.parallel)
