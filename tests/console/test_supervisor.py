"""make run's supervisor: a child that exits is restarted with back-off, the back-off resets after a
while up, the console gives up only after repeated exits in a short window, and /readyz names a part
that is down or restarting."""

import json
import subprocess
import sys
import time

import pytest

from console.supervisor import Supervisor, read_status, status_path

CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def run_until(supervisor, clock, condition, step=0.5, limit=400):
    """Advance the fake clock step by step, waiting for real child exits: counted, not timed."""
    for _ in range(limit):
        if condition():
            return True
        alive = supervisor.tick()
        if not alive:
            return condition()
        for child in supervisor.children.values():
            if child.process is not None and child.restart_at is None:
                try:
                    child.process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
        clock.now += step
    return condition()


@pytest.fixture
def said():
    return []


def test_a_child_that_exits_is_restarted_with_a_doubling_back_off_while_the_others_run(tmp_path, said):
    clock = Clock()
    sup = Supervisor({"worker": CRASH, "web": SLEEP}, cwd=tmp_path, env=None, status_file=tmp_path / "s.json",
                     clock=clock, say=said.append, give_up_exits=100)
    sup.start()
    web_pid = sup.children["web"].process.pid
    try:
        assert run_until(sup, clock, lambda: sup.children["worker"].restarts >= 4)
        delays = [e["detail"].split("restarting in ")[1] for e in sup.events if e["event"] == "exited"][:4]
        assert delays == ["1 s", "2 s", "4 s", "8 s"]
        assert sup.children["web"].process.pid == web_pid and sup.children["web"].restarts == 0
        assert "worker exited: exited with status 3; restarting in 1 s" in said
    finally:
        sup.stop()


def test_the_back_off_starts_again_after_a_minute_up(tmp_path, said):
    clock = Clock()
    sup = Supervisor({"collector": SLEEP}, cwd=tmp_path, env=None, clock=clock, say=said.append)
    sup.start()
    child = sup.children["collector"]
    child.failures = 4  # as if it had crashed four times in a row before
    try:
        clock.now += 61  # up for more than a minute
        child.process.kill()
        child.process.wait()
        sup.tick()
        assert child.restart_at == pytest.approx(clock.now + 1.0)
    finally:
        sup.stop()


def test_the_console_gives_up_after_repeated_exits_in_a_short_window(tmp_path, said):
    clock = Clock()
    sup = Supervisor({"beat": CRASH}, cwd=tmp_path, env=None, clock=clock, say=said.append,
                     backoff=(0.5,), give_up_exits=4, give_up_window_s=60)
    sup.start()
    try:
        assert run_until(sup, clock, lambda: bool(sup.gave_up))
        assert sup.gave_up == "beat exited with status 3 4 times within 60 s; giving up"
        assert sup.children["beat"].restarts == 3
    finally:
        sup.stop()


def test_the_status_file_names_a_restarting_part_and_readyz_reports_it(tmp_path, settings, client, said):
    settings.DATA_DIR = tmp_path
    clock = Clock()
    sup = Supervisor({"worker": SLEEP, "web": SLEEP}, cwd=tmp_path, env=None, status_file=status_path(tmp_path),
                     clock=clock, say=said.append)
    sup.start()
    def failures():
        answer = client.get("/readyz")
        return answer.status_code, (answer.json().get("failures") or [])

    try:
        assert not [f for f in failures()[1] if f.startswith(("worker", "web"))]
        sup.children["worker"].process.kill()
        sup.children["worker"].process.wait()
        sup.tick()
        status = read_status(status_path(tmp_path))
        assert status["parts"]["worker"]["state"] == "restarting"
        assert status["parts"]["worker"]["last_exit"] == "was killed by SIGKILL"
        code, problems = failures()
        assert code == 503 and "worker: restarting (was killed by SIGKILL)" in problems
        clock.now += 1
        sup.tick()
        assert not [f for f in failures()[1] if f.startswith(("worker", "web"))]
    finally:
        sup.stop()
    assert not status_path(tmp_path).exists()


def test_a_status_file_left_by_a_dead_launcher_is_ignored(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path = status_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": dead.pid, "parts": {"web": {"state": "down"}}, "updated": time.time()}))
    assert read_status(path) is None


def test_the_childrens_output_goes_to_the_given_file(tmp_path):
    log = open(tmp_path / "children.log", "wb")  # noqa: SIM115 - closed below, after the children
    code = "import sys; print('out'); print('err', file=sys.stderr)"
    supervisor = Supervisor({"hello": [sys.executable, "-c", code]}, cwd=tmp_path, env={}, output=log,
                            say=lambda text: None)
    try:
        supervisor.start()
        supervisor.children["hello"].process.wait(timeout=30)
    finally:
        supervisor.stop()
        log.close()
    assert sorted((tmp_path / "children.log").read_text().split()) == ["err", "out"]
