"""The nodes app's tasks, queued by name (nodes.services does not import nodes.tasks)."""

from console.core.queue import after_commit


def probe_node(node_id: int) -> None:
    """Probe one node soon, after the current transaction commits."""
    after_commit("nodes.tasks.probe_node", node_id, periodic=True)
