"""The local and SSH executors against real processes and a real sshd on loopback; no mocks.

The executor runs one launcher script (jobs/executors/launcher.sh) through the node's transport, so
every behaviour test runs twice, once per transport. The SSH "node" is this machine, so the test can look at
the engine's process in /proc and at its instance directory directly. Under CI=true a missing
sshd fails the SSH half instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jobs.executors import (
    AlreadyRunning,
    Executor,
    InvalidSpec,
    ProcessHandle,
    ProcessSpec,
    ProcessStatus,
    StillRunning,
)
from jobs.executors.launcher import LAUNCHER_SH, SUPERVISOR_SH
from nodes.transports.local import LocalTransport, engine_base_env
from nodes.transports.ssh import SSHPool, SSHTarget, SSHTransport
from tests.sshd import SshdNode, require_sshd

pytestmark = pytest.mark.integration

PY = sys.executable
SLEEPER = "import sys, time; print('hello from', sys.argv[1], flush=True); time.sleep(600)"
WITH_CHILD = (
    "import subprocess, time; c = subprocess.Popen(['sleep', '600']); "
    "print('child', c.pid, flush=True); time.sleep(600)"
)
IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
)


# --------------------------------------------------------------------------- helpers


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def proc_state(pid: int) -> str | None:
    """The /proc state letter of ``pid``, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2]


def gone(pid: int) -> bool:
    """No such process, or only a zombie (this container's pid 1 does not always reap orphans)."""
    return proc_state(pid) in (None, "Z", "X")


def session_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[3])


def environ_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")


def new_key(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Rig:
    """One executor under test, a way to build a fresh one (a console restart), and cleanup."""

    def __init__(self, kind: str, make, base: Path) -> None:
        self.kind = kind
        self._make = make
        self.base = base  # the instance base directory, as this (same) machine sees it
        self.executor = make()
        self.keys: list[str] = []

    def new_executor(self):
        return self._make()

    def start(self, argv: list[str], *, key: str | None = None, **kwargs) -> ProcessHandle:
        key = key or new_key()
        if key not in self.keys:
            self.keys.append(key)
        return self.executor.start(ProcessSpec(key, argv, **kwargs))

    def instance_dir(self, key: str) -> Path:
        return self.base / key

    def wait_ended(self, key: str, timeout: float = 10.0) -> ProcessStatus:
        return wait_for(lambda: (s := self.executor.status(key)).exit_code is not None and s, timeout)

    def close(self) -> None:
        for key in self.keys:
            try:
                self.executor.stop(key, grace_s=1)
            except Exception:  # noqa: BLE001 - best-effort teardown
                pass


@pytest.fixture(scope="module")
def sshd_node():
    require_sshd()
    node = SshdNode()
    node.start()
    yield node
    node.cleanup()


@pytest.fixture(scope="module")
def pool():
    pool = SSHPool()
    yield pool
    pool.close_all()


def ssh_executor(pool: SSHPool, node: SshdNode, base: str) -> Executor:
    return Executor(SSHTransport(node.target(), pool=pool, instance_dir=base))


@pytest.fixture(params=["local", "ssh"])
def rig(request, tmp_path):
    base = tmp_path / "instances"
    if request.param == "local":
        rig = Rig("local", lambda: Executor(LocalTransport(instance_dir=base)), base)
    else:
        node, pool = request.getfixturevalue("sshd_node"), request.getfixturevalue("pool")
        rig = Rig("ssh", lambda: ssh_executor(pool, node, str(base)), base)
    yield rig
    rig.close()


# --------------------------------------------------------------------------- both executors


def test_start_status_tail_and_stop_kill_the_whole_group(rig):
    handle = rig.start([PY, "-c", WITH_CHILD])
    assert handle.generation == 1
    assert handle.workdir == str(rig.instance_dir(handle.instance_key))

    status = rig.executor.status(handle)
    assert status.alive and status.ours and status.pid_alive
    assert status.pid == handle.pid and status.exit_code is None
    # The engine leads its own session (and so its own process group) and carries the marker.
    assert session_of(handle.pid) == handle.pid
    assert f"BOOM_INSTANCE={handle.instance_key}" in environ_of(handle.pid)
    assert "BOOM_GENERATION=1" in environ_of(handle.pid)

    log = wait_for(lambda: (t := rig.executor.tail(handle)) and "child" in t and t)
    child = int(log.split("child ", 1)[1].split()[0])
    assert not gone(child)

    stopped = rig.executor.stop(handle, grace_s=5)
    assert not stopped.alive and not stopped.ours
    assert stopped.exit_code == 143 and stopped.signal == 15
    assert stopped.ended_at is not None and stopped.ended_at >= handle.started_at
    assert "SIGTERM" in stopped.exit_reason()
    assert gone(handle.pid)
    assert wait_for(lambda: gone(child), timeout=3), "the engine's child survived the stop"
    assert rig.executor.find(handle.instance_key) is None
    assert "signal 15" in rig.executor.tail(handle)


ESCAPES = (
    "import subprocess, sys, time; c = subprocess.Popen(['sleep', '600'], start_new_session=True); "
    "print('escaped', c.pid, flush=True); time.sleep(float(sys.argv[1]))"
)


def _escaped_child(rig, handle) -> int:
    log = wait_for(lambda: (t := rig.executor.tail(handle)) and "escaped" in t and t)
    child = int(log.split("escaped ", 1)[1].split()[0])
    assert session_of(child) != handle.pid  # it left the engine's session and group
    return child


def test_stop_also_ends_children_that_left_the_group(rig):
    handle = rig.start([PY, "-c", ESCAPES, "600"])
    child = _escaped_child(rig, handle)
    assert rig.executor.stop(handle, grace_s=5).exit_code == 143
    assert wait_for(lambda: gone(child), timeout=3), "a child in its own session survived the stop"


def test_a_restart_ends_the_leftovers_of_the_previous_run(rig):
    handle = rig.start([PY, "-c", ESCAPES, "0.2"])  # the engine exits, its child lives on
    child = _escaped_child(rig, handle)
    assert rig.wait_ended(handle.instance_key).exit_code == 0
    assert not gone(child)
    with pytest.raises(StillRunning):
        rig.executor.cleanup(handle.instance_key)
    again = rig.start([PY, "-c", SLEEPER, "again"], key=handle.instance_key)
    assert gone(child)
    assert f"leftover processes of the previous run: {child}" in rig.executor.tail(again)


def test_kill_9_of_the_engine_is_recorded_as_137(rig):
    handle = rig.start([PY, "-c", SLEEPER, "nine"])
    wait_for(lambda: "hello from nine" in rig.executor.tail(handle))
    os.kill(handle.pid, signal.SIGKILL)
    status = rig.wait_ended(handle.instance_key)
    assert not status.alive
    assert status.exit_code == 137 and status.signal == 9
    assert status.oom_killed is not True  # no OOM happened; False where the counters are readable
    assert "SIGKILL" in status.exit_reason()
    assert "exit status 137 (signal 9)" in rig.executor.tail(handle)


def test_kill_9_of_the_engine_ends_its_children_still_in_its_group_at_once(rig):
    """vLLM's engine core outlived its API server killed with SIGKILL and held the replica's memory while
    the replacement started: the supervisor ends what is left of the engine's process group."""
    handle = rig.start([PY, "-c", WITH_CHILD])
    log = wait_for(lambda: (t := rig.executor.tail(handle)) and "child" in t and t)
    child = int(log.split("child ", 1)[1].split()[0])
    os.kill(handle.pid, signal.SIGKILL)
    assert rig.wait_ended(handle.instance_key).exit_code == 137
    assert wait_for(lambda: gone(child), timeout=5), "the killed engine's child lived on"


def test_the_engine_ignores_sighup_like_under_nohup(rig):
    handle = rig.start([PY, "-c", SLEEPER, "hup"])
    wait_for(lambda: "hello from hup" in rig.executor.tail(handle))
    os.kill(handle.pid, signal.SIGHUP)
    time.sleep(0.2)
    assert rig.executor.status(handle).alive


def test_a_normal_exit_code_is_recorded(rig):
    handle = rig.start([PY, "-c", "import sys; print('bye', flush=True); sys.exit(3)"])
    status = rig.wait_ended(handle.instance_key)
    assert (status.exit_code, status.signal, status.alive) == (3, None, False)
    assert status.exit_reason() == "exited with code 3"
    assert "bye" in rig.executor.tail(handle)


def test_a_second_start_keeps_the_previous_log(rig):
    key = new_key()
    first = rig.start([PY, "-c", SLEEPER, "run-one"], key=key)
    wait_for(lambda: "run-one" in rig.executor.tail(key))
    rig.executor.stop(first, grace_s=5)
    second = rig.start([PY, "-c", SLEEPER, "run-two"], key=key)
    assert second.generation == first.generation + 1
    assert second.pid != first.pid
    wait_for(lambda: "run-two" in rig.executor.tail(key))
    current = rig.executor.tail(key)
    previous = rig.executor.tail(key, previous=True)
    assert "run-one" in previous and "signal 15" in previous and "run-two" not in previous
    assert "run-one" not in current
    status = rig.executor.status(key)
    assert status.alive and status.generation == 2 and status.exit_code is None
    assert (rig.instance_dir(key) / "log.1").exists()


def test_tail_returns_only_the_last_lines(rig):
    code = "import time\nfor i in range(500): print('line', i)\nimport sys; sys.stdout.flush(); time.sleep(600)"
    handle = rig.start([PY, "-c", code])
    wait_for(lambda: "line 499" in rig.executor.tail(handle, lines=5))
    assert rig.executor.tail(handle, lines=3).splitlines() == ["line 497", "line 498", "line 499"]
    assert rig.executor.tail(handle, previous=True) == ""  # no previous run


def test_find_readopts_a_running_process_after_a_console_restart(rig):
    handle = rig.start([PY, "-c", SLEEPER, "adopt-me"])
    restarted = rig.new_executor()  # a new executor object, as after a console restart
    found = restarted.find(handle.instance_key)
    assert found is not None
    assert (found.pid, found.generation, found.workdir) == (handle.pid, handle.generation, handle.workdir)
    assert found.started_at == pytest.approx(handle.started_at)
    assert restarted.status(found).alive
    assert restarted.find(new_key("never-started")) is None
    restarted.stop(found, grace_s=5)
    assert rig.executor.find(handle.instance_key) is None


def test_a_recycled_pid_is_not_ours_and_is_never_signalled(rig):
    handle = rig.start([PY, "-c", SLEEPER, "short-lived"])
    rig.executor.stop(handle, grace_s=5)
    # The pid now names an unrelated live process: this test's own.
    (rig.instance_dir(handle.instance_key) / "pid").write_text(f"{os.getpid()}\n")
    status = rig.executor.status(handle)
    assert status.pid == os.getpid()
    assert status.pid_alive and not status.ours and not status.alive
    assert rig.executor.find(handle.instance_key) is None
    stopped = rig.executor.stop(handle, grace_s=0.5)  # must not touch this process
    assert not stopped.alive
    assert proc_state(os.getpid()) not in (None, "Z")


def test_a_missing_command_is_reported_at_once_as_127(rig):
    started = time.monotonic()
    handle = rig.start(["boom-no-such-engine-zz", "--model", "/nowhere"])
    assert time.monotonic() - started < 5
    status = rig.executor.status(handle)  # the settle in start() already saw it end
    assert status.exit_code == 127 and not status.alive
    assert status.exit_reason() == "command not found (exit code 127)"
    assert "command not found: boom-no-such-engine-zz" in rig.executor.tail(handle)


def test_a_missing_working_directory_is_reported(rig, tmp_path):
    handle = rig.start([PY, "-c", "print('never')"], cwd=str(tmp_path / "no-such-dir"))
    status = rig.wait_ended(handle.instance_key)
    assert status.exit_code == 1
    assert "working directory not found" in rig.executor.tail(handle)


def test_shell_metacharacters_are_passed_literally(rig):
    tag = uuid.uuid4().hex[:8]
    traps = [Path(f"/tmp/pwned-{tag}-{i}") for i in range(7)]
    args = [
        f"; touch {traps[0]}",
        f"$(touch {traps[1]})",
        f"`touch {traps[2]}`",
        f"| touch {traps[3]}",
        f"&& touch {traps[4]} #",
        'it\'s "quoted" \\ $HOME * ?',
        f"'; touch {traps[5]}; '",
    ]
    handle = rig.start(["/bin/echo", *args], env={"EXTRA": f"$(touch {traps[6]})"})
    status = rig.wait_ended(handle.instance_key)
    assert status.exit_code == 0
    log = rig.executor.tail(handle)
    assert log.splitlines()[0] == " ".join(args)
    for trap in traps:
        assert not trap.exists(), f"{trap} was created: an argument reached a shell"
    # The same through python, which shows each argument as its own word.
    handle = rig.start([PY, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *args])
    rig.wait_ended(handle.instance_key)
    assert json.loads(rig.executor.tail(handle).splitlines()[0]) == args
    assert not any(trap.exists() for trap in traps)


def test_env_values_arrive_intact(rig):
    env = {
        "SPACES": "two words  and  more",
        "QUOTES": 'it\'s "quoted" `x` $HOME \\ ${PATH} %s',
        "NEWLINES": "line one\nline two\n\n",
        "UNICODE": "模型 — ok",
        "EMPTY": "",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }
    code = "import json, os, sys; print(json.dumps({k: os.environ.get(k) for k in sys.argv[1:]}))"
    handle = rig.start([PY, "-c", code, *env], env=env)
    assert rig.wait_ended(handle.instance_key).exit_code == 0
    assert json.loads(rig.executor.tail(handle).splitlines()[0]) == env
    # They reach the engine through a file only its owner can read, never through a command line.
    assert (rig.instance_dir(handle.instance_key) / "spec").stat().st_mode & 0o777 == 0o600


def test_the_working_directory_defaults_to_the_instance_directory(rig, tmp_path):
    code = "import os; print(os.getcwd())"
    handle = rig.start([PY, "-c", code])
    rig.wait_ended(handle.instance_key)
    assert rig.executor.tail(handle).splitlines()[0] == handle.workdir
    handle = rig.start([PY, "-c", code], cwd=str(tmp_path))
    rig.wait_ended(handle.instance_key)
    assert rig.executor.tail(handle).splitlines()[0] == str(tmp_path)


def test_stop_escalates_to_sigkill_after_the_grace(rig):
    handle = rig.start([PY, "-c", IGNORES_TERM])
    wait_for(lambda: "ready" in rig.executor.tail(handle))
    started = time.monotonic()
    status = rig.executor.stop(handle, grace_s=0.5)
    took = time.monotonic() - started
    assert status.exit_code == 137 and status.signal == 9 and not status.alive
    assert 0.5 <= took < 5, took
    assert gone(handle.pid)


def test_stop_of_a_stopped_or_unknown_instance_is_harmless(rig):
    handle = rig.start([PY, "-c", "print('done')"])
    rig.wait_ended(handle.instance_key)
    assert rig.executor.stop(handle, grace_s=1).exit_code == 0
    unknown = rig.executor.stop(new_key("unknown"), grace_s=1)
    assert not unknown.alive and not unknown.exists and unknown.exit_code is None


def test_starting_a_running_instance_is_refused_with_its_handle(rig):
    handle = rig.start([PY, "-c", SLEEPER, "only-one"])
    with pytest.raises(AlreadyRunning) as caught:
        rig.start([PY, "-c", SLEEPER, "second"], key=handle.instance_key)
    assert caught.value.handle.pid == handle.pid
    assert rig.executor.status(handle).generation == 1


def test_concurrent_starts_of_one_key_start_one_process(rig):
    key = new_key("race")
    rig.keys.append(key)
    spec = ProcessSpec(key, [PY, "-c", SLEEPER, "race"])

    def attempt():
        try:
            return rig.executor.start(spec)
        except AlreadyRunning as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: attempt(), range(4)))
    started = [r for r in results if isinstance(r, ProcessHandle)]
    refused = [r for r in results if isinstance(r, AlreadyRunning)]
    assert len(started) == 1 and len(refused) == 3
    assert {r.handle.pid for r in refused} == {started[0].pid}


def test_cleanup_refuses_a_running_instance_and_removes_a_stopped_one(rig):
    handle = rig.start([PY, "-c", SLEEPER, "cleanup"])
    with pytest.raises(StillRunning):
        rig.executor.cleanup(handle.instance_key)
    assert rig.executor.status(handle).alive
    rig.executor.stop(handle, grace_s=5)
    rig.executor.cleanup(handle.instance_key)
    assert not rig.instance_dir(handle.instance_key).exists()
    assert not rig.executor.status(handle).exists
    rig.executor.cleanup(handle.instance_key)  # again: nothing to do


def test_ports_in_use_sees_ipv4_and_ipv6_listeners(rig):
    v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    v4.bind(("127.0.0.1", 0))
    v4.listen()
    listening = [v4.getsockname()[1]]
    sockets = [v4]
    try:
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.bind(("::1", 0))
        v6.listen()
        sockets.append(v6)
        listening.append(v6.getsockname()[1])
    except OSError:
        pass  # no IPv6 here
    bound_only = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bound_only.bind(("127.0.0.1", 0))  # bound but not listening: no engine there
    idle = bound_only.getsockname()[1]
    try:
        assert rig.executor.ports_in_use([*listening, idle]) == set(listening)
        assert rig.executor.port_in_use(listening[0])
        assert not rig.executor.port_in_use(idle)
    finally:
        for sock in [*sockets, bound_only]:
            sock.close()


def test_write_files_puts_the_engines_files_into_its_instance_directory(rig):
    key = new_key()
    rig.keys.append(key)
    text = '{"name": "ü $(touch x) `y` \\"}\n'
    workdir = rig.executor.write_files(key, {"config.json": text, "empty.txt": ""})
    assert workdir == rig.executor.workdir(key) == str(rig.instance_dir(key))
    assert (rig.instance_dir(key) / "config.json").read_text() == text
    assert (rig.instance_dir(key) / "empty.txt").read_text() == ""
    assert (rig.instance_dir(key) / "config.json").stat().st_mode & 0o777 == 0o600
    assert rig.instance_dir(key).stat().st_mode & 0o777 == 0o700
    assert not (rig.instance_dir(key) / "x").exists()
    # A second write replaces the file whole; the engine, started in its directory, reads it there.
    rig.executor.write_files(key, {"config.json": "second"})
    handle = rig.start([PY, "-c", "print('read', open('config.json').read())"], key=key)
    assert wait_for(lambda: "read second" in rig.executor.tail(handle))
    assert (rig.instance_dir(key) / "config.json").read_text() == "second"


def test_list_instances_names_the_instance_directories(rig):
    assert rig.executor.list_instances() == []  # no base directory yet
    keys = sorted(new_key() for _ in range(3))
    for key in keys:
        rig.executor.write_files(key, {})
    (rig.base / ".hidden").mkdir()
    (rig.base / "not-a-directory").write_text("")
    assert sorted(rig.executor.list_instances()) == keys


def test_start_is_fast(rig, capsys):
    rig.executor.status(new_key("warm-up"))  # SSH: open the pooled connection first
    timings = []
    for _ in range(5):
        started = time.monotonic()
        rig.start([PY, "-c", SLEEPER, "fast"])
        timings.append(time.monotonic() - started)
    with capsys.disabled():
        print(
            f"\n{rig.kind} start latency (settle {rig.executor.settle_s:g} s): "
            f"median {statistics.median(timings):.3f} s, max {max(timings):.3f} s"
        )
    assert statistics.median(timings) < 1.0


# --------------------------------------------------------------------------- SSH only


def test_ssh_engine_survives_the_connection_and_sshd_going_away(sshd_node, pool, tmp_path):
    executor = ssh_executor(pool, sshd_node, str(tmp_path / "instances"))
    handle = executor.start(ProcessSpec(new_key(), [PY, "-c", SLEEPER, "survivor"]))
    try:
        pool.close_all()
        sshd_node.restart()  # kills sshd and every session process it still had
        time.sleep(0.3)
        assert not gone(handle.pid)
        found = executor.find(handle.instance_key)  # a new connection
        assert found is not None and found.pid == handle.pid
        assert "hello from survivor" in executor.tail(handle)
    finally:
        executor.stop(handle.instance_key, grace_s=2)


def test_ssh_default_base_dir_is_under_the_remote_home(sshd_node, pool):
    base = f"~/.boom-console-test-{uuid.uuid4().hex[:8]}/instances"
    executor = ssh_executor(pool, sshd_node, base)
    local_root = Path(os.path.expanduser(base)).parent
    try:
        key = new_key()
        # The workdir is known before the start (the engine's files name it), the home asked of the node.
        assert executor.workdir(key) == os.path.join(os.path.expanduser(base), key)
        assert executor.write_files(key, {"config.json": "{}"}) == executor.workdir(key)
        handle = executor.start(ProcessSpec(key, [PY, "-c", "print(open('config.json').read())"]))
        assert handle.workdir == executor.workdir(key)
        assert Path(handle.workdir, "log").exists()
        assert (Path(handle.workdir).stat().st_mode & 0o777) == 0o700
        assert executor.list_instances() == [key]
    finally:
        shutil.rmtree(local_root, ignore_errors=True)


# --------------------------------------------------------------------------- no node needed


class _NoNode(Executor):
    def __init__(self, base):
        super().__init__(LocalTransport(instance_dir=base))

    def _run_script(self, script, timeout):  # pragma: no cover - must never be reached
        raise AssertionError("bad input reached the node")


@pytest.mark.parametrize(
    "key", ["", ".", "..", "../x", "a/b", "a b", "-x", ".hidden", "k;rm", "x" * 81, "ключ", "a\nb"]
)
def test_bad_instance_keys_are_refused_before_anything_runs(key, tmp_path):
    executor = _NoNode(tmp_path)
    with pytest.raises(InvalidSpec):
        ProcessSpec(key, ["/bin/true"])
    for call in (executor.status, executor.find, executor.cleanup, executor.tail, executor.stop, executor.workdir):
        with pytest.raises(InvalidSpec):
            call(key)
    with pytest.raises(InvalidSpec):
        executor.write_files(key, {"config.json": "{}"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"argv": []},
        {"argv": "/bin/echo hi"},
        {"argv": [""]},
        {"argv": ["/bin/echo", "a\0b"]},
        {"argv": ["/bin/echo", 3]},
        {"argv": ["/bin/echo", "\udcff"]},
        {"argv": ["/bin/echo"], "env": {"1A": "x"}},
        {"argv": ["/bin/echo"], "env": {"A-B": "x"}},
        {"argv": ["/bin/echo"], "env": {"A=B": "x"}},
        {"argv": ["/bin/echo"], "env": {"BOOM_INSTANCE": "x"}},
        {"argv": ["/bin/echo"], "env": {"A": "x\0y"}},
        {"argv": ["/bin/echo"], "env": {"A": 1}},
        {"argv": ["/bin/echo"], "cwd": ""},
    ],
)
def test_bad_specs_are_refused(kwargs):
    with pytest.raises(InvalidSpec):
        ProcessSpec("ok-key", **kwargs)


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../x", "a/b", ".hidden", "x.tmp", "pid", "log", "spec", "lock", "supervise.sh", "a b"]
)
def test_bad_file_names_and_contents_are_refused_before_anything_runs(name, tmp_path):
    executor = _NoNode(tmp_path)
    with pytest.raises(InvalidSpec):
        executor.write_files("ok-key", {name: "text"})
    with pytest.raises(InvalidSpec):
        executor.write_files("ok-key", {"config.json": "nul\0byte"})


def test_bad_base_dirs_and_ports_are_refused(tmp_path):
    target = SSHTarget(host="127.0.0.1", port=22, username="nobody", private_key="", passphrase=None,
                       pinned_host_key=None)
    with pytest.raises(InvalidSpec):
        Executor(SSHTransport(target, instance_dir="relative/instances"))
    with pytest.raises(InvalidSpec):
        Executor(SSHTransport(target, instance_dir="~other/instances"))
    executor = _NoNode(tmp_path)
    for port in (0, -1, 65536, "80", True):
        with pytest.raises(InvalidSpec):
            executor.ports_in_use([port])
    assert executor.ports_in_use([]) == set()


def test_local_engines_do_not_inherit_the_consoles_secrets():
    env = engine_base_env({"PATH": "/bin", "CONSOLE_SECRET_KEY": "s", "DJANGO_SETTINGS_MODULE": "x", "HOME": "/h"})
    assert env == {"PATH": "/bin", "HOME": "/h"}


def test_exit_reasons():
    assert ProcessStatus(alive=True, ours=True).exit_reason() is None
    assert ProcessStatus(alive=False, ours=False).exit_reason() is None
    oom = ProcessStatus(alive=False, ours=False, exit_code=137, signal=9, oom_killed=True)
    assert oom.exit_reason().startswith("killed by the OOM killer")
    assert (
        ProcessStatus(alive=False, ours=False, exit_code=139, signal=11).exit_reason().startswith("killed by SIGSEGV")
    )


def test_the_scripts_are_valid_bash(tmp_path):
    for name, text in (("launcher", LAUNCHER_SH), ("supervisor", SUPERVISOR_SH)):
        path = tmp_path / f"{name}.sh"
        path.write_text(text)
        checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert checked.returncode == 0, (name, checked.stderr)
    assert "BOOM_PAYLOAD" not in LAUNCHER_SH


def test_the_launcher_is_its_files_with_the_supervisor_inside_and_its_exit_codes():
    from jobs.executors import launcher

    here = Path(launcher.__file__).resolve().parent
    assert SUPERVISOR_SH == (here / "supervise.sh").read_text()
    assert LAUNCHER_SH.startswith((here / "launcher.sh").read_text().split("__SUPERVISOR__")[0])
    assert SUPERVISOR_SH.rstrip("\n") in LAUNCHER_SH and "__SUPERVISOR__" not in LAUNCHER_SH
    codes = (launcher.EXIT_INVALID, launcher.EXIT_ALREADY_RUNNING, launcher.EXIT_LAUNCH_FAILED,
             launcher.EXIT_STILL_RUNNING)
    assert codes == (2, 3, 4, 5)
