"""The inventory API contract of shared/API.md: nodes, credentials, accelerators, events, roles."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.core.models import Event
from nodes.models import Credential, Node
from tests import factories
from tests.nodes.keygen import ed25519_openssh

pytestmark = pytest.mark.django_db


def make_credential(api, name="ops-key", **extra):
    body = {"name": name, "username": "root", "private_key": ed25519_openssh(), **extra}
    return api.post("/api/v1/credentials/", body, format="json")


def test_a_request_without_a_token_is_401(client):
    assert client.get("/api/v1/nodes/").status_code == 401


def test_a_user_without_a_role_may_not_read(client_for):
    assert client_for(None).get("/api/v1/nodes/").status_code == 403


def test_a_viewer_reads_nodes_but_a_viewer_post_is_403(viewer_api):
    assert viewer_api.get("/api/v1/nodes/").status_code == 200
    response = viewer_api.post("/api/v1/nodes/", {"name": "x", "address": "10.0.0.1"}, format="json")
    assert response.status_code == 403


def test_an_operator_may_probe_but_may_not_create_nodes(operator_api, django_capture_on_commit_callbacks):
    node = factories.node(name="gpu-01")
    with django_capture_on_commit_callbacks(execute=False):
        assert operator_api.post(f"/api/v1/nodes/{node.pk}/probe/").status_code == 202
    assert operator_api.post("/api/v1/nodes/", {"name": "x", "address": "h"}, format="json").status_code == 403


def test_the_private_key_is_write_only_and_the_fingerprint_is_shown(admin_api):
    response = make_credential(admin_api)
    assert response.status_code == 201, response.content
    body = response.json()
    assert "private_key" not in body and "passphrase" not in body
    assert body["fingerprint"].startswith("SHA256:")
    listed = admin_api.get("/api/v1/credentials/").json()["results"][0]
    assert "private_key" not in listed
    stored = Credential.objects.get()
    assert "PRIVATE KEY" not in stored.encrypted_private_key
    assert stored.private_key().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_the_audit_event_of_a_credential_never_contains_the_key(admin_api):
    key = ed25519_openssh()
    admin_api.post("/api/v1/credentials/", {"name": "k", "username": "root", "private_key": key}, format="json")
    event = Event.objects.get(verb="create", object_type="credential")
    assert "BEGIN" not in str(event.detail) and event.actor == "admin-user"


def test_an_encrypted_key_without_its_passphrase_is_a_400_that_says_so(admin_api):
    response = make_credential(admin_api, private_key=ed25519_openssh("s3cret"))
    assert response.status_code == 400
    assert "passphrase" in response.json()
    assert "passphrase" in " ".join(response.json()["passphrase"]).lower()
    assert not Credential.objects.exists()


def test_an_encrypted_key_with_its_passphrase_is_stored_without_it(admin_api):
    response = make_credential(admin_api, private_key=ed25519_openssh("s3cret"), passphrase="s3cret")
    assert response.status_code == 201, response.content
    from nodes.keys import load_private_key

    load_private_key(Credential.objects.get().private_key(), None)


def test_an_unparsable_key_is_a_400_on_the_private_key_field(admin_api):
    response = make_credential(admin_api, private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n")
    assert response.status_code == 400
    assert "private_key" in response.json()


def test_a_valid_ssh_node_is_created_and_audited_with_the_source_address(admin_api,
                                                                          django_capture_on_commit_callbacks):
    credential_id = make_credential(admin_api).json()["id"]
    body = {"name": "npu-01", "address": "npu-01.example.com", "transport": "ssh", "ssh_port": 2222,
            "ssh_user": "root", "credential": credential_id, "labels": {"accelerator": "910b", "rack": "a3"}}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_api.post("/api/v1/nodes/", body, format="json")
    assert response.status_code == 201, response.content
    node = response.json()
    assert node["status"] == "unknown" and node["accelerator_count"] == 0 and node["facts"] == {}
    assert len(callbacks) == 1  # the first probe is queued after the commit
    event = Event.objects.get(verb="create", object_type="node")
    assert event.object_id == str(node["id"]) and event.source_address == "127.0.0.1"


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "bad name;rm -rf /"),
        ("name", ""),
        ("address", "host; touch /tmp/pwned"),
        ("address", "-oProxyCommand=evil"),
        ("ssh_port", 0),
        ("ssh_port", 70000),
        ("ssh_port", "ssh"),
        ("labels", {"bad key!": "x"}),
        ("labels", {"rack": "has space"}),
        ("labels", ["not", "an", "object"]),
        ("ssh_user", "root;id"),
        ("transport", "telnet"),
    ],
)
def test_bad_node_input_is_a_400_naming_the_field_and_nothing_is_saved(admin_api, field, value):
    credential_id = make_credential(admin_api).json()["id"]
    body = {"name": "n1", "address": "10.0.0.5", "transport": "ssh", "credential": credential_id, field: value}
    response = admin_api.post("/api/v1/nodes/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Node.objects.exists()


def test_an_ssh_node_without_a_credential_is_a_400(admin_api):
    response = admin_api.post("/api/v1/nodes/", {"name": "n1", "address": "10.0.0.5", "transport": "ssh"},
                              format="json")
    assert response.status_code == 400 and "credential" in response.json()


def test_a_duplicate_node_name_is_a_400(admin_api):
    factories.node(name="gpu-01")
    response = admin_api.post("/api/v1/nodes/", {"name": "gpu-01", "address": "10.0.0.5", "transport": "local"},
                              format="json")
    assert response.status_code == 400 and "name" in response.json()


def test_deleting_a_credential_that_nodes_use_is_a_409(admin_api):
    credential_id = make_credential(admin_api).json()["id"]
    factories.node(name="gpu-01", credential_id=credential_id)
    response = admin_api.delete(f"/api/v1/credentials/{credential_id}/")
    assert response.status_code == 409 and "gpu-01" in response.json()["detail"]


def test_accelerators_are_filtered_by_node_vendor_kind_and_health(viewer_api):
    a, b = factories.node(name="a"), factories.node(name="b")
    factories.accelerators(a, 8, "nvidia")
    acc = factories.accelerators(b, 4, "huawei")
    acc[0].health = "critical"
    acc[0].save()
    get = lambda q: viewer_api.get(f"/api/v1/accelerators/?{q}").json()["count"]  # noqa: E731
    assert get(f"node={a.pk}") == 8
    assert get("vendor=huawei") == 4 and get("kind=npu") == 4 and get("kind=gpu") == 8
    assert get("health=critical") == 1
    row = viewer_api.get("/api/v1/accelerators/?vendor=huawei&health=critical").json()["results"][0]
    for field in ("id", "node", "index", "vendor", "kind", "model", "uuid", "memory_total_bytes",
                  "memory_used_bytes", "utilization_percent", "temperature_c", "power_w", "health"):
        assert field in row


def _queries(api, url):
    with CaptureQueriesContext(connection) as ctx:
        assert api.get(url).status_code == 200
    return len(ctx)


def test_the_node_and_accelerator_lists_take_a_constant_number_of_queries(viewer_api):
    for _ in range(3):
        factories.accelerators(factories.node(), 8)
    few_nodes, few_accels = _queries(viewer_api, "/api/v1/nodes/"), _queries(viewer_api, "/api/v1/accelerators/")
    for _ in range(20):
        factories.accelerators(factories.node(), 8)
    assert _queries(viewer_api, "/api/v1/nodes/") == few_nodes
    assert _queries(viewer_api, "/api/v1/accelerators/") == few_accels
    assert few_nodes <= 6 and few_accels <= 6


def test_events_are_filtered_by_object(viewer_api):
    node = factories.node(name="gpu-01")
    from console.core import audit

    audit.record("probe", node)
    audit.record("probe", factories.node(name="gpu-02"))
    response = viewer_api.get(f"/api/v1/events/?object_type=node&object_id={node.pk}").json()
    assert response["count"] == 1
    assert set(response["results"][0]) >= {"id", "time", "actor", "verb", "object_type", "object_id", "detail"}


def test_an_operator_sets_and_ends_maintenance_with_history(operator_api):
    node = factories.node(name="gpu-01")
    assert operator_api.post(f"/api/v1/nodes/{node.pk}/maintenance/", {"enabled": True},
                             format="json").json()["status"] == "maintenance"
    assert operator_api.post(f"/api/v1/nodes/{node.pk}/maintenance/", {"enabled": False},
                             format="json").json()["status"] == "unknown"
    history = operator_api.get(f"/api/v1/nodes/{node.pk}/history/").json()["results"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [("maintenance", "unknown"),
                                                                     ("online", "maintenance")]
    assert history[0]["actor"] == "operator-user"


def test_the_openapi_schema_and_docs_are_served_to_a_viewer(client, make_user):
    client.force_login(make_user("viewer"))
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
