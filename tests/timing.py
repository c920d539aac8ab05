"""Deadlines for tests that wait on real components (issue 12, item 7): a test gives a real process, socket
or thread time proportional to the machine's load, so that a busy 2-core machine running other suites
does not turn a slow answer into a failure. Where a deadline tells the right behaviour from a wrong one
(a command killed at its 1 s timeout rather than at the end of its 30 s sleep), ``below`` keeps the
scaled deadline under the wrong behaviour's duration, so the test can still fail."""

import os
import time

MAX_FACTOR = 10.0


def load_factor() -> float:
    """The 1-minute load average per core, between 1 and MAX_FACTOR: how many times longer than on an
    idle machine a real component may take now."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 1.0
    return min(MAX_FACTOR, max(1.0, load))


def scaled(seconds: float, *, below: float | None = None) -> float:
    """``seconds`` times the load factor, and under ``below`` (by 10 %) when given."""
    value = seconds * load_factor()
    return min(value, below * 0.9) if below is not None else value


def wait_for(predicate, seconds: float, *, interval: float = 0.05, what: str = "the condition"):
    """Poll ``predicate`` until it returns a true value (returned) for at most ``scaled(seconds)``."""
    limit = scaled(seconds)
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {limit:.1f} s ({seconds} s scaled by the load)")
        time.sleep(interval)
