"""Live-stream topics: their names, who may see them, and how a subscription catches up.

Topics (shared/API.md "Live streams"): ``cluster`` (overview tiles, the accelerator heatmap, job
throughput), ``node:<id>`` (the node's and its accelerators' series), ``job:<id>`` (the job's and its
instances' series), ``benchmark:<id>`` (a benchmark run's progress), ``modelversion:<id>`` (a model
version's status and verification progress), ``alerts``. Besides points, a topic
carries ``{"state": {"changed": {kind: time}}}`` when an object its pages show changed
(console.core.broadcast.changed): pages re-read their live regions. A user needs the viewer role for
any topic, and the node, job or benchmark must exist. Sync functions: consumers call them through
``database_sync_to_async``.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from console.core.broadcast import (
    current_cursor,  # noqa: F401  (consumers use it from here)
    entry_message,
)
from console.core.models import StreamEntry, StreamWatch
from console.core.permissions import VIEWER, has_role
from jobs.models import BenchmarkRun, Job
from models_registry.models import ModelVersion
from nodes.models import Node

TOPIC_RE = re.compile(r"^(?:(?P<bare>cluster|alerts)|"
                      r"(?P<kind>node|job|benchmark|modelversion):(?P<id>[1-9][0-9]{0,17}))$")
MAX_TOPICS = 200  # per connection


class TopicError(ValueError):
    """A topic that does not exist or that the user may not see."""


def parse_topic(topic) -> tuple[str, int | None]:
    """``("node", 3)`` for ``"node:3"``, ``("cluster", None)``...; TopicError when malformed."""
    match = TOPIC_RE.match(topic) if isinstance(topic, str) else None
    if match is None:
        raise TopicError(f"unknown topic {str(topic)[:80]!r}: use cluster, alerts, node:<id>, job:<id>, "
                         "benchmark:<id> or modelversion:<id>")
    if match["bare"]:
        return match["bare"], None
    return match["kind"], int(match["id"])


def check_topic(user, topic: str) -> None:
    """Raise TopicError unless ``user`` may see ``topic`` (which must name an existing object)."""
    kind, pk = parse_topic(topic)
    if not has_role(user, VIEWER):
        raise TopicError(f"your role may not see {topic}")
    if kind == "node" and not Node.objects.filter(pk=pk).exists():
        raise TopicError(f"no node {pk}")
    if kind == "job" and not Job.objects.filter(pk=pk).exists():
        raise TopicError(f"no job {pk}")
    if kind == "benchmark" and not BenchmarkRun.objects.filter(pk=pk).exists():
        raise TopicError(f"no benchmark {pk}")
    if kind == "modelversion" and not ModelVersion.objects.filter(pk=pk).exists():
        raise TopicError(f"no model version {pk}")


def entries_after(cursor: int, topics: list[str], limit: int = 5000) -> tuple[list[dict], bool]:
    """Stream entries after ``cursor`` for ``topics``, oldest first, and whether the cursor is older
    than what the table still keeps (the client must then reload from the series API)."""
    oldest = StreamEntry.objects.order_by("pk").values_list("pk", flat=True).first()
    too_old = oldest is not None and cursor < oldest - 1 and cursor > 0
    rows = StreamEntry.objects.filter(pk__gt=cursor, topic__in=topics).order_by("pk")[:limit]
    return [entry_message(row) for row in rows], too_old


def prune_entries(now=None) -> int:
    """Delete stream entries older than CONSOLE_STREAM_RETENTION_S, in bounded batches."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.CONSOLE_STREAM_RETENTION_S)
    deleted = 0
    while True:
        ids = list(StreamEntry.objects.filter(time__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:5000])
        if not ids:
            return deleted
        deleted += StreamEntry.objects.filter(pk__in=ids).delete()[0]


#: Topics published only while watched (console.telemetry.collector), and how long a watch lasts without
#: being renewed (a subscribed connection renews its watches every third of it).
WATCHED_PREFIXES = ("node:",)
WATCH_TTL_S = 60


def watch(topics) -> int:
    """Mark ``topics`` watched for WATCH_TTL_S (those of WATCHED_PREFIXES; one statement)."""
    until = timezone.now() + timedelta(seconds=WATCH_TTL_S)
    rows = [StreamWatch(topic=t, until=until) for t in dict.fromkeys(topics) if t.startswith(WATCHED_PREFIXES)]
    if rows:
        StreamWatch.objects.bulk_create(rows, update_conflicts=True, unique_fields=["topic"], update_fields=["until"])
    return len(rows)


def watched_topics(prefix: str = "node:") -> set[str]:
    """The topics with ``prefix`` someone watches now."""
    return set(StreamWatch.objects.filter(topic__startswith=prefix, until__gt=timezone.now())
               .values_list("topic", flat=True))
