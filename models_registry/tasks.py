"""Celery tasks of the model registry (queue ``long``): thin wrappers around models_registry.services."""

from celery import shared_task

from models_registry import services
from models_registry.services import copies, transfer

#: An unreachable node is retried this many times (after 15, 30, 60 s) before the import fails.
IMPORT_RETRIES = 3


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=IMPORT_RETRIES)
def import_version(self, version_id: int) -> None:
    """Inspect a version's directory on its node (idempotent: only while an import is pending).

    acks_late is safe: a re-delivered message finds ``import_pending`` cleared and returns, and the
    inspection is bounded by CONSOLE_INSPECT_TIMEOUT_S, well under the broker's visibility timeout.
    """
    try:
        services.import_version(version_id, final_attempt=self.request.retries >= IMPORT_RETRIES)
    except services.NodeUnavailable as exc:
        raise self.retry(exc=exc, countdown=15 * 2 ** self.request.retries) from None


@shared_task(acks_late=False, ignore_result=True)
def verify_version(version_id: int) -> None:
    """Hash a version's files on its node (idempotent: only while it is ``verifying``).

    Not acks_late: hashing a large model takes longer than the broker's visibility timeout, and a
    re-delivery would hash it twice. If the worker dies, the version stops reporting progress and an
    operator may verify it again after CONSOLE_VERIFY_STALE_S (services.request_verify).
    """
    services.verify_version(version_id)


@shared_task(acks_late=False, ignore_result=True)
def copy_version(copy_id: int) -> None:
    """Stream a pending copy's files from a node with a ready copy, then verify them (idempotent: only
    while the copy is ``pending``). Not acks_late, like verify_version: a copy of hundreds of gigabytes
    outlasts the broker's visibility timeout. A worker that dies leaves the copy ``copying`` without
    progress; after CONSOLE_COPY_STALE_S a new request starts it again, keeping the files already there."""
    transfer.run_copy(copy_id)


@shared_task(acks_late=False, ignore_result=True)
def verify_copy(copy_id: int) -> None:
    """Hash a copy's files on its node against the verified manifest (idempotent: only while verifying)."""
    transfer.verify_copy(copy_id)


@shared_task(acks_late=True, ignore_result=True)
def remove_copy(copy_id: int) -> None:
    """Delete a removing copy's files on its node, then the copy (idempotent: only while removing)."""
    copies.remove_copy(copy_id)
