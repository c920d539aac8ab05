"""'Probe this node now' is one service, whichever door asks: the API, the page, a create or an edit."""

import pytest

from console.core.models import Event
from nodes import tasks
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    ids = []
    # Services queue it by name (nodes.enqueue): the registered task's apply_async is what runs.
    monkeypatch.setattr(tasks.probe_node, "apply_async", lambda args=None, kwargs=None, **options: ids.append(args[0]))
    return ids


def test_the_api_and_the_page_request_a_probe_the_same_way_after_the_commit(
        operator_api, client, make_user, queued, django_capture_on_commit_callbacks):
    node = factories.node(name="gpu-1")
    client.force_login(make_user("operator", "operator-at-the-page"))
    with django_capture_on_commit_callbacks(execute=True):
        assert operator_api.post(f"/api/v1/nodes/{node.pk}/probe/").status_code == 202
        assert client.post(f"/nodes/{node.pk}/probe/").status_code == 302
    assert queued == [node.pk, node.pk]
    assert Event.objects.filter(verb="probe", object_id=str(node.pk)).count() == 2


def test_saving_a_node_or_resetting_its_host_key_requests_a_probe_without_a_probe_event(
        admin_api, queued, django_capture_on_commit_callbacks):
    node = factories.node(name="local", transport="local")
    with django_capture_on_commit_callbacks(execute=True):
        patched = admin_api.patch(f"/api/v1/nodes/{node.pk}/", {"probe_interval_s": 120}, format="json")
        assert patched.status_code == 200, patched.content
        assert admin_api.post(f"/api/v1/nodes/{node.pk}/reset-host-key/").status_code == 200
    assert queued == [node.pk, node.pk]
    assert not Event.objects.filter(verb="probe").exists()
