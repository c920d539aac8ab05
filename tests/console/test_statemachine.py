"""console.core.statemachine: the one transition helper every state machine goes through."""

import pytest

from console.core import statemachine
from console.core.errors import Conflict
from console.core.models import Event
from console.core.statemachine import TransitionNotAllowed
from nodes.choices import NODE_TRANSITIONS, NodeStatus
from nodes.models import Node, NodeStatusChange
from nodes.services import transition_node
from tests import factories

pytestmark = pytest.mark.django_db


def move(node, to, reason="", **fields):
    return statemachine.transition(node, to, reason, table=NODE_TRANSITIONS, what="a node",
                                   history=NodeStatusChange, **fields)


def test_a_change_the_table_forbids_is_a_conflict_naming_both_statuses():
    node = factories.node(status=NodeStatus.MAINTENANCE)
    with pytest.raises(TransitionNotAllowed) as caught:
        move(node, NodeStatus.ONLINE)
    assert isinstance(caught.value, Conflict)
    assert str(caught.value) == "a node cannot go from maintenance to online"
    assert Node.objects.get(pk=node.pk).status == NodeStatus.MAINTENANCE
    assert not NodeStatusChange.objects.exists() and not Event.objects.filter(verb="status").exists()


def test_a_transition_writes_one_history_row_and_one_status_event():
    node = factories.node(status=NodeStatus.ONLINE)
    assert move(node, NodeStatus.DEGRADED, "disk full", actor="alice")
    assert node.status == NodeStatus.DEGRADED and node.status_detail == "disk full"
    row = NodeStatusChange.objects.get(node=node)
    assert (row.from_status, row.to_status, row.reason, row.actor) == ("online", "degraded", "disk full", "alice")
    event = Event.objects.get(object_type="node", object_id=str(node.pk))
    assert (event.verb, event.actor, event.detail) == (
        "status", "alice", {"from": "online", "to": "degraded", "reason": "disk full"})


def test_the_conditional_write_loses_to_a_concurrent_change():
    node = factories.node(status=NodeStatus.ONLINE)
    stale = Node.objects.get(pk=node.pk)
    assert transition_node(node, NodeStatus.MAINTENANCE, "operator")
    assert not transition_node(stale, NodeStatus.UNREACHABLE, "probe timed out")
    assert Node.objects.get(pk=node.pk).status == NodeStatus.MAINTENANCE
    assert NodeStatusChange.objects.filter(node=node).count() == 1
    assert Event.objects.filter(verb="status", object_id=str(node.pk)).count() == 1


def test_a_guard_is_part_of_the_conditional_write():
    node = factories.node(status=NodeStatus.ONLINE, status_detail="fine")
    assert not move(node, NodeStatus.DEGRADED, guard={"status_detail": "something else"})
    assert move(node, NodeStatus.DEGRADED, guard={"status_detail": "fine"})


def test_the_same_status_is_no_transition_but_still_a_conditional_write_of_reason_and_fields():
    node = factories.node(status=NodeStatus.ONLINE)
    stale = Node.objects.get(pk=node.pk)
    assert move(node, NodeStatus.ONLINE, "still fine", last_probe_duration_ms=12)
    assert Node.objects.get(pk=node.pk).status_detail == "still fine"
    assert not NodeStatusChange.objects.exists() and not Event.objects.filter(verb="status").exists()
    move(node, NodeStatus.DEGRADED, "hot")
    assert not move(stale, NodeStatus.ONLINE, "late news")  # the row moved on since it was read
    assert Node.objects.get(pk=node.pk).status_detail == "hot"


def test_the_actor_is_the_request_user_when_none_is_given(make_user):
    user = make_user("operator", "bob")
    request = type("Request", (), {"user": user, "META": {}})()
    node = factories.node(status=NodeStatus.ONLINE)
    assert move(node, NodeStatus.MAINTENANCE, request=request)
    assert NodeStatusChange.objects.get(node=node).actor == "bob"
    assert Event.objects.get(verb="status", object_id=str(node.pk)).actor == "bob"


def test_a_machine_without_history_or_event_writes_only_the_row():
    node = factories.node(status=NodeStatus.ONLINE)
    assert statemachine.transition(node, NodeStatus.DEGRADED, table=NODE_TRANSITIONS, verb=None)
    assert Node.objects.get(pk=node.pk).status == NodeStatus.DEGRADED
    assert not NodeStatusChange.objects.exists() and not Event.objects.exists()


def test_a_batch_transition_moves_only_the_rows_still_in_the_source_status():
    online, unreachable = factories.node(status=NodeStatus.ONLINE), factories.node(status=NodeStatus.UNREACHABLE)
    moved = statemachine.transition_all(Node.objects.all(), NodeStatus.ONLINE, NodeStatus.DEGRADED,
                                        table=NODE_TRANSITIONS)
    assert moved == 1
    assert Node.objects.get(pk=online.pk).status == NodeStatus.DEGRADED
    assert Node.objects.get(pk=unreachable.pk).status == NodeStatus.UNREACHABLE
    with pytest.raises(TransitionNotAllowed):
        statemachine.transition_all(Node.objects.all(), NodeStatus.MAINTENANCE, NodeStatus.ONLINE,
                                    table=NODE_TRANSITIONS)


def test_the_api_answers_a_forbidden_transition_with_409_and_its_detail():
    from console.core.api import exception_handler

    response = exception_handler(TransitionNotAllowed("a node cannot go from maintenance to online"), {})
    assert response.status_code == 409
    assert response.data == {"detail": "a node cannot go from maintenance to online"}
