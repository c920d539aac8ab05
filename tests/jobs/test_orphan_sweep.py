"""The periodic orphan sweep (jobs.reconciler.reap_orphans_due): each node at most every 30 s, but a
node that came back (its status changed) at the next call."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from jobs import reconciler
from nodes.choices import NodeStatus
from nodes.models import Node
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def swept(monkeypatch):
    cache.clear()
    calls = []
    monkeypatch.setattr(reconciler, "reap_orphans", lambda node: calls.append(node.pk) or [])
    yield calls
    cache.clear()


def test_each_online_node_is_swept_once_per_interval(swept):
    online = factories.node(status_changed_at=timezone.now())
    factories.node(status=NodeStatus.UNREACHABLE)
    reconciler.reap_orphans_due()
    reconciler.reap_orphans_due()
    assert swept == [online.pk]


def test_a_node_that_came_back_is_swept_at_the_next_call_not_an_interval_later(swept):
    """The production-topology test waited 55 s for the engine left on a node that came back."""
    node = factories.node(status_changed_at=timezone.now() - timedelta(minutes=5))
    reconciler.reap_orphans_due()
    assert swept == [node.pk]
    # Lost, then back: the probe records each change of status.
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.UNREACHABLE, status_changed_at=timezone.now())
    reconciler.reap_orphans_due()
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.ONLINE,
                                           status_changed_at=timezone.now() + timedelta(seconds=1))
    reconciler.reap_orphans_due()
    assert swept == [node.pk, node.pk]
    reconciler.reap_orphans_due()
    assert swept == [node.pk, node.pk]
