"""Celery tasks of the inventory: thin wrappers around nodes.services."""

from celery import shared_task

from nodes import services


@shared_task(acks_late=True, ignore_result=True)
def probe_node(node_id: int) -> None:
    """Probe one node now (the on-demand probe)."""
    services.probe_node(node_id)


@shared_task(acks_late=True, ignore_result=True, expires=30)
def probe_due_nodes() -> int:
    """Claim the nodes whose periodic probe is due and probe them concurrently."""
    claimed = services.claim_due_nodes()
    services.probe_round(claimed)
    return len(claimed)
