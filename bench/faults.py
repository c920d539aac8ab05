"""Fault trials (issue 12, item 3): a real Celery worker is killed with SIGKILL at a random point of a
launch, a stop or a heal of a simulator job, and restarted one second later (as `make run`'s supervisor
does); a real Celery beat keeps sending the periodic reconcile pass. After each trial, what must hold:

- no lost desired state: the job's ``desired_state`` is what the driver set, and the console converges
  to it (running: every replica running and answering; stopped: no active instance);
- no duplicate engine process: the processes carrying the job's instance marker (``BOOM_INSTANCE=``
  in /proc/<pid>/environ, set by jobs/executors/supervise.sh) are exactly the recorded pids, one per
  running instance;
- no orphan: no marked process is left that no active instance owns (a stopped job has none).

Recovery time: from the kill to convergence. The baseline beside it: the same operation with no kill,
in the same run. Operations: ``launch`` (desired state stopped -> running), ``stop`` (running -> stopped),
``heal`` (the engine killed with SIGKILL; the reconciler restarts it).

The console under test: SQLite and the filesystem broker (the embedded profile, default), or PostgreSQL +
Redis with ``--database-url`` and ``--redis-url``. tests/integration/test_faults.py runs a reduced
version (5 trials) on the test database.

Usage: ``python bench/faults.py [--trials 20] [--replicas 2] [--database-url ...] [--redis-url ...]``.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OPERATIONS = ("launch", "stop", "heal")
RESTART_DELAY_S = 1.0  # console.supervisor's first back-off
# The console's own settings stay out of the children's environment but for what the rig sets.
PRIVATE_ENV = ("CONSOLE_", "DJANGO_", "CELERY_", "DATABASE_URL", "REDIS_URL", "BOOM_")


@dataclass
class Rig:
    """A worker (queue lifecycle) and beat, as `make run` starts them, against the driver's database."""

    data_dir: Path
    database_url: str
    broker_url: str
    redis_url: str | None
    instance_prefix: str
    secret: str
    port_range: tuple[int, int]
    log_dir: Path
    worker: subprocess.Popen | None = None
    beat: subprocess.Popen | None = None
    worker_starts: int = 0

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE_ENV)}
        env.update({"DJANGO_SETTINGS_MODULE": "console.settings", "PYTHONUNBUFFERED": "1",
                    "CONSOLE_DATA_DIR": str(self.data_dir), "DATABASE_URL": self.database_url,
                    "CELERY_BROKER_URL": self.broker_url, "CONSOLE_SECRET_KEY": self.secret,
                    "CONSOLE_INSTANCE_PREFIX": self.instance_prefix,
                    "CONSOLE_INSTANCE_PORT_MIN": str(self.port_range[0]),
                    "CONSOLE_INSTANCE_PORT_MAX": str(self.port_range[1])})
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        return env

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")
        try:
            return subprocess.Popen(argv, cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()

    def start_worker(self) -> None:
        self.worker_starts += 1
        self.worker = self._spawn("worker", [
            str(BIN / "celery"), "-A", "console", "worker", "-Q", "lifecycle", "--pool", "threads", "-c", "4",
            "--without-mingle", "--without-gossip", "--loglevel", "WARNING", "-n", f"faults{self.worker_starts}@%h"])

    def start_beat(self) -> None:
        self.beat = self._spawn("beat", [
            str(BIN / "celery"), "-A", "console", "beat", "--loglevel", "WARNING",
            "--schedule", str(self.log_dir / "celerybeat-schedule"), "--pidfile", ""])

    def kill_worker(self) -> None:
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def stop(self) -> None:
        for proc in (self.worker, self.beat):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def marked_processes(prefix: str) -> dict[int, str]:
    """Live processes carrying an instance marker of ``prefix`` (engines started by this console): pid -> key."""
    found = {}
    needle = f"BOOM_INSTANCE={prefix}-".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if stat[stat.rfind(b")") + 2:][:1] in (b"Z", b"X"):
            continue
        for item in environ.split(b"\0"):
            if item.startswith(needle):
                found[int(entry)] = item.split(b"=", 1)[1].decode()
    return found


@dataclass
class Trial:
    number: int
    operation: str
    killed: bool
    kill_after_s: float = 0.0
    recovery_s: float | None = None  # kill (or operation, without a kill) to convergence
    total_s: float | None = None  # operation to convergence
    problems: list[str] = field(default_factory=list)


def converged(job_id: int, desired: str, replicas: int, prefix: str, since_pids: set[int] | None = None):
    """None while converging; else a list of the invariants that do not hold (empty: all hold)."""
    from jobs.models import Instance, Job

    job = Job.objects.get(pk=job_id)
    marked = {pid for pid, key in marked_processes(prefix).items() if key.startswith(f"{prefix}-job{job_id}-")}
    active = list(Instance.objects.filter(job_id=job_id, state__in=("scheduled", "starting", "running",
                                                                     "unhealthy", "restarting")))
    if desired == "running":
        running = [i for i in active if i.state == "running" and i.pid]
        if len(running) < replicas or len(active) != replicas or job.state != "running":
            return None
        if since_pids is not None and {i.pid for i in running} & since_pids:
            return None  # the heal has not happened yet
        if marked != {i.pid for i in running}:
            return None  # a process not recorded yet, or one being stopped
        problems = []
    else:
        if active or marked:
            return None
        problems = []
    if job.desired_state != desired:
        problems.append(f"desired state {job.desired_state!r}, wanted {desired!r}")
    return problems


def wait_converged(job_id, desired, replicas, prefix, timeout, since_pids=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = converged(job_id, desired, replicas, prefix, since_pids)
        if result is not None:
            return time.monotonic(), result
        time.sleep(0.05)
    from jobs.models import Instance

    marked = sorted(p for p, k in marked_processes(prefix).items() if k.startswith(f"{prefix}-job{job_id}-"))
    seen = list(Instance.objects.filter(job_id=job_id).values_list("replica", "state", "pid", "state_detail"))
    return None, [f"did not converge to {desired} within {timeout:.0f} s: instances {seen}, marked processes {marked}"]


def duplicates_after(job_id: int, replicas: int, prefix: str, settle_s: float) -> list[str]:
    """Watch a converged job for ``settle_s``: a late duplicate (a redelivered start) would show here."""
    problems, deadline = [], time.monotonic() + settle_s
    while time.monotonic() < deadline:
        marked = [p for p, k in marked_processes(prefix).items() if k.startswith(f"{prefix}-job{job_id}-")]
        if len(marked) > replicas:
            problems.append(f"{len(marked)} marked processes for {replicas} replicas")
            break
        time.sleep(0.1)
    return problems


def run_trial(rig: Rig, job_id: int, replicas: int, number: int, operation: str, rng: random.Random, *,
              kill: bool = True, timeout: float = 90.0, settle_s: float = 1.0) -> Trial:
    from jobs.models import Instance, Job

    trial = Trial(number, operation, kill)
    desired = "stopped" if operation == "stop" else "running"
    # The starting point of the operation, reached with the worker up.
    before = "stopped" if operation == "launch" else "running"
    Job.objects.filter(pk=job_id).update(desired_state=before)
    at, problems = wait_converged(job_id, before, replicas, rig.instance_prefix, timeout)
    if at is None:
        trial.problems = ["set-up: " + p for p in problems]
        return trial
    old_pids = None
    started = time.monotonic()
    if operation == "heal":
        # Every kill a first crash (restarted at once): the back-off of a crash loop is not what is measured.
        Instance.objects.filter(job_id=job_id).update(backoff_s=0)
        old_pids = {p for p, k in marked_processes(rig.instance_prefix).items()
                    if k.startswith(f"{rig.instance_prefix}-job{job_id}-")}
        for pid in old_pids:
            os.kill(pid, signal.SIGKILL)
    else:
        Job.objects.filter(pk=job_id).update(desired_state=desired)
    origin = started
    if kill:
        trial.kill_after_s = rng.uniform(0.0, 1.5)
        time.sleep(trial.kill_after_s)
        origin = time.monotonic()
        rig.kill_worker()
        time.sleep(RESTART_DELAY_S)
        rig.start_worker()
    at, problems = wait_converged(job_id, desired, replicas, rig.instance_prefix, timeout, old_pids)
    trial.problems = problems
    if at is not None:
        trial.recovery_s, trial.total_s = at - origin, at - started
        trial.problems += duplicates_after(job_id, replicas, rig.instance_prefix, settle_s)
    return trial


def make_job(name: str, replicas: int):
    from jobs.models import Job
    from tests.jobs import factories as jf

    return Job.objects.create(name=name, engine="simulator", model_version=jf.version(status="registered"),
                              replicas=replicas, accelerators_per_replica=0, desired_state="stopped",
                              options={"python": sys.executable, "ttft_ms": 5, "tpot_ms": 1})


def cleanup(rig: Rig, job_id: int) -> None:
    """Stop the job through the reconciler of this process, then SIGKILL any marked process left."""
    from jobs import reconciler
    from jobs.models import Job

    Job.objects.filter(pk=job_id).update(desired_state="stopped")
    for _ in range(3):
        try:
            reconciler.reconcile_job(job_id)
        except Exception:  # best effort; the kill below is the guarantee
            break
    for pid in marked_processes(rig.instance_prefix):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def summarise(trials: list[Trial]) -> dict:
    from bench.healing_harness import stats

    by_op = {}
    for op in OPERATIONS:
        killed = [t.recovery_s for t in trials if t.operation == op and t.killed and t.recovery_s is not None]
        base = [t.total_s for t in trials if t.operation == op and not t.killed and t.total_s is not None]
        total = [t.total_s for t in trials if t.operation == op and t.killed and t.total_s is not None]
        by_op[op] = {"kills": len([t for t in trials if t.operation == op and t.killed]),
                     "recovery": stats(killed), "baseline": stats(base),
                     "added": stats(total)[0] - stats(base)[0], "added_max": stats(total)[2] - stats(base)[0]}
    return by_op


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="Trials with a worker kill (default 20).")
    parser.add_argument("--baseline", type=int, default=2, help="Trials of each operation without a kill.")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--database-url", help="PostgreSQL (default: SQLite in a fresh data folder).")
    parser.add_argument("--redis-url", help="Redis for the broker, cache and channel layer (default: the "
                                            "filesystem broker).")
    parser.add_argument("--no-report", action="store_true", help="Do not write docs/benchmarks.md.")
    args = parser.parse_args()

    from bench.common import setup_django, write_section

    # A SIGTERM (timeout, Ctrl-C's cousin) still runs the clean-up below: no engine is left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = setup_django(args.database_url)
    os.environ.pop("CELERY_TASK_ALWAYS_EAGER", None)
    from django.conf import settings

    from nodes.services import probe_node, register_local_node

    node = register_local_node()
    probe_node(node.pk)
    database_url = args.database_url or f"sqlite:///{settings.DATABASES['default']['NAME']}"
    rig = Rig(data_dir=data_dir, database_url=database_url, broker_url=args.redis_url or "filesystem://",
              redis_url=args.redis_url, instance_prefix=settings.CONSOLE_INSTANCE_PREFIX,
              secret=settings.CONSOLE_SECRET_KEY, port_range=settings.CONSOLE_INSTANCE_PORT_RANGE,
              log_dir=data_dir / "fault-logs")
    job = make_job("faults", args.replicas)
    rng = random.Random(args.seed)
    trials: list[Trial] = []
    rig.start_beat()
    rig.start_worker()
    try:
        n = 0
        for op in OPERATIONS:
            for _ in range(args.baseline):
                n += 1
                trials.append(run_trial(rig, job.pk, args.replicas, n, op, rng, kill=False))
        for _ in range(args.trials):
            n += 1
            trial = run_trial(rig, job.pk, args.replicas, n, rng.choice(OPERATIONS), rng)
            trials.append(trial)
            print(f"trial {trial.number}: {trial.operation}, worker killed after {trial.kill_after_s:.2f} s, "
                  f"recovered in {trial.recovery_s if trial.recovery_s is None else round(trial.recovery_s, 2)} s"
                  + (f"; PROBLEMS: {trial.problems}" if trial.problems else ""), flush=True)
    finally:
        rig.stop()
        cleanup(rig, job.pk)
    failed = [t for t in trials if t.problems]
    summary = summarise(trials)
    profile = "PostgreSQL + Redis" if args.redis_url else ("PostgreSQL, filesystem broker" if args.database_url
                                                           else "embedded: SQLite + filesystem broker")
    rows = [f"| {op} | {s['kills']} | {_cell(s['recovery'])} | {_cell(s['baseline'])} | "
            f"{s['added']:+.2f} s (max {s['added_max']:+.2f} s) |" for op, s in summary.items()]
    worst = max(s["added_max"] for s in summary.values())
    body = "\n".join([
        f"`python bench/faults.py --trials {args.trials}` ({profile}; a simulator job of {args.replicas} replicas "
        "on node `local`; one Celery worker, queue lifecycle, threads pool, and Celery beat, both real processes). "
        f"In each trial the worker gets SIGKILL at a random point 0-1.5 s into a launch, a stop or a heal (the "
        f"engine killed), and is started again {RESTART_DELAY_S:.0f} s later, as `make run`'s supervisor does. "
        "Checked after each: the desired state kept and reached, the processes carrying the job's instance "
        "marker exactly the recorded pids (no duplicate, watched 1 s more), none left after a stop (no orphan).",
        "",
        f"**{len(trials) - len(failed)} of {len(trials)} trials held every invariant{_failures(failed)}.**",
        "",
        "| Operation | Worker kills | Kill to converged (median / p90 / max) | Same operation, no kill "
        "(operation to converged) | Delay the kill added (operation to converged, median with kill minus "
        "median without) |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Goal (issue 12, item 2): a killed worker delays no job by more than 5 s. Largest delay added here: "
        f"{worst:.2f} s ({'met' if worst <= 5 else 'NOT met'}), {RESTART_DELAY_S:.0f} s of it the supervisor's "
        "restart delay and the rest mostly the new worker's start (Django and Celery imports on these cores).",
        "",
        KNOWN,
    ])
    print(body)
    if not args.no_report:
        write_section("Faults", _merged(profile, body))
    return 1 if failed else 0


KNOWN = ("A restart interrupted by the kill (the worker dies between the instance's `starting` transition and "
         "the launch) used to be read by the next check as a second crash of the old process, whose SIGKILL exit "
         "status was still on the node, so the replica waited the 10 s crash back-off (7.79 s added on PostgreSQL + "
         "Redis before the fix). The reconciler now saves the node's run counter with each pid and starts such an "
         "interrupted start again at once (tests/integration/test_faults.py).")


def _merged(profile: str, body: str) -> str:
    """The "Faults" section with this profile's subsection replaced and the other profiles' kept (each run
    measures one profile)."""
    import re

    from bench.common import REPORT

    text = REPORT.read_text() if REPORT.exists() else ""
    match = re.search(r"^## Faults\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    kept = []
    if match:
        for sub in re.findall(r"^### .*?(?=^### |\Z)", match.group(1), re.S | re.M):
            if not sub.startswith(f"### {profile}\n"):
                kept.append(sub.strip())
    own = f"### {profile}\n\n_Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}._\n\n{body.strip()}"
    return "\n\n".join(sorted([own, *kept]))


def _failures(failed: list[Trial]) -> str:
    return "" if not failed else " (failures: " + "; ".join(f"{t.number} {t.operation}: {t.problems}"
                                                            for t in failed) + ")"


def _cell(triple) -> str:
    med, p90, top = triple
    return "-" if med != med else f"{med:.2f} / {p90:.2f} / {top:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
