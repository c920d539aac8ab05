"""Supervision of ``make run``'s children: a child that exits is started again, with back-off.

The policy (the same as the systemd units of docs/deployment.md):

* a child that exits is restarted after 1 s, then 2, 4, 8, 16 and 30 s for each further exit; the
  back-off starts again from 1 s once the child has been up for a minute (``RESET_AFTER_S``);
* the console gives up (every child stopped, non-zero exit) only when one child exited
  ``GIVE_UP_EXITS`` times within ``GIVE_UP_WINDOW_S``: a part that cannot start at all (a broken
  configuration, a port in use) does not restart forever;
* every exit and restart is printed and recorded in ``<data dir>/run/supervisor.json``, which
  ``/readyz`` reads to name a part that is down or restarting (console.health).

Plain Python without Django: the launcher runs before anything else is up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RESET_AFTER_S = 60.0
GIVE_UP_EXITS = 6
GIVE_UP_WINDOW_S = 180.0
HISTORY = 50


def status_path(data_dir: Path) -> Path:
    return Path(data_dir) / "run" / "supervisor.json"


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0  # monotonic
    failures: int = 0  # consecutive quick exits: the index into BACKOFF_S
    exits: deque = field(default_factory=deque)  # monotonic times of recent exits
    restart_at: float | None = None  # monotonic; set while waiting to restart
    restarts: int = 0
    last_exit: str = ""

    @property
    def state(self) -> str:
        if self.restart_at is not None:
            return "restarting"
        if self.process is not None and self.process.poll() is None:
            return "running"
        return "down"


class Supervisor:
    """Start ``commands`` (name -> argv), keep them running, stop them all on :meth:`stop`."""

    def __init__(self, commands: dict[str, list[str]], *, cwd: Path, env: dict, status_file: Path | None = None,
                 backoff: tuple[float, ...] = BACKOFF_S, reset_after_s: float = RESET_AFTER_S,
                 give_up_exits: int = GIVE_UP_EXITS, give_up_window_s: float = GIVE_UP_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic, say: Callable[[str], None] | None = None,
                 output=None):
        self.children = {name: Child(name, list(argv)) for name, argv in commands.items()}
        self.cwd, self.env, self.status_file = cwd, env, status_file
        self.backoff, self.reset_after_s = backoff, reset_after_s
        self.give_up_exits, self.give_up_window_s = give_up_exits, give_up_window_s
        self.clock = clock
        self.say = say or (lambda text: print(text, flush=True))
        self.output = output  # a file for the children's stdout and stderr; None: the supervisor's own
        self.events: deque = deque(maxlen=HISTORY)
        self.gave_up: str = ""

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)
        self._write_status()

    def _spawn(self, child: Child) -> None:
        # Each child in its own session so that we, not the terminal, decide how they stop.
        child.process = subprocess.Popen(child.argv, cwd=self.cwd, env=self.env, start_new_session=True,
                                         stdout=self.output, stderr=subprocess.STDOUT if self.output else None)
        child.started_at = self.clock()
        child.restart_at = None

    def tick(self) -> bool:
        """One look at every child: note exits, restart those whose back-off is over. False once the
        console should give up (then :attr:`gave_up` says why)."""
        now = self.clock()
        changed = False
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                    child.restarts += 1
                    self._record(child, "restarted", f"pid {child.process.pid}")
                    changed = True
                continue
            if child.process is None or child.process.poll() is None:
                continue
            code = child.process.returncode
            child.last_exit = _describe_exit(code)
            if now - child.started_at >= self.reset_after_s:
                child.failures = 0  # it was up for a while: back-off starts again from the shortest wait
            child.exits.append(now)
            while child.exits and now - child.exits[0] > self.give_up_window_s:
                child.exits.popleft()
            if len(child.exits) >= self.give_up_exits:
                self.gave_up = (f"{child.name} {child.last_exit} {len(child.exits)} times within "
                                f"{self.give_up_window_s:g} s; giving up")
                self._record(child, "gave up", self.gave_up)
                self._write_status()
                return False
            delay = self.backoff[min(child.failures, len(self.backoff) - 1)]
            child.failures += 1
            child.restart_at = now + delay
            self._record(child, "exited", f"{child.last_exit}; restarting in {delay:g} s")
            changed = True
        if changed:
            self._write_status()
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every running child, SIGKILL its process group after ``timeout``."""
        live = [c.process for c in self.children.values() if c.process is not None and c.process.poll() is None]
        for process in live:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in live:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for child in self.children.values():
            child.restart_at = None
        if self.status_file is not None:
            self.status_file.unlink(missing_ok=True)

    # --- records ----------------------------------------------------------------------------------

    def _record(self, child: Child, what: str, detail: str) -> None:
        self.say(f"{child.name} {what}: {detail}")
        self.events.append({"time": time.time(), "part": child.name, "event": what, "detail": detail})

    def status(self) -> dict:
        return {
            "pid": os.getpid(),
            "updated": time.time(),
            "parts": {c.name: {"state": c.state, "pid": c.process.pid if c.process else None,
                               "restarts": c.restarts, "last_exit": c.last_exit}
                      for c in self.children.values()},
            "events": list(self.events),
        }

    def _write_status(self) -> None:
        if self.status_file is None:
            return
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=1))
        tmp.replace(self.status_file)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def read_status(path: Path) -> dict | None:
    """The supervisor's last status, or None when no supervisor runs (production: systemd)."""
    try:
        status = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a file left by a launcher that is gone
    except PermissionError:
        pass
    return status
