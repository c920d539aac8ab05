"""The registry's tasks, queued by name (models_registry.services does not import models_registry.tasks)."""

from console.core.queue import after_commit


def import_version(version_id: int) -> None:
    """Inspect a version's files on its node, after the current transaction commits."""
    after_commit("models_registry.tasks.import_version", version_id)


def verify_version(version_id: int) -> None:
    """Hash a version's files on its node, after the current transaction commits."""
    after_commit("models_registry.tasks.verify_version", version_id)


def copy_version(copy_id: int) -> None:
    """Stream a pending copy's files from a ready copy, after the current transaction commits."""
    after_commit("models_registry.tasks.copy_version", copy_id)


def verify_copy(copy_id: int) -> None:
    """Hash a copy's files on its node, after the current transaction commits."""
    after_commit("models_registry.tasks.verify_copy", copy_id)


def remove_copy(copy_id: int) -> None:
    """Delete a copy's files on its node, after the current transaction commits."""
    after_commit("models_registry.tasks.remove_copy", copy_id)
