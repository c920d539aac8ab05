"""Alerting's tasks, queued by name (console.alerting.services does not import its tasks module)."""

from console.core.queue import after_commit


def evaluate() -> None:
    """Evaluate the rules after the current transaction commits (a silence takes effect at once)."""
    after_commit("console.alerting.tasks.evaluate", periodic=True)


def dispatch() -> None:
    """Deliver pending notifications after the current transaction commits."""
    after_commit("console.alerting.tasks.dispatch", periodic=True)
