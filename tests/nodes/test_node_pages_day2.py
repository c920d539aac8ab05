"""Day-2 actions on the inventory pages (issue 17): delete a node, reset its host key and enter
maintenance after a confirmation with a reason (in the audit log); credentials edited, deleted and
generated, with the public key to put in authorized_keys shown and the private key never."""

import paramiko
import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client

from console.core.models import Event
from jobs.models import Instance
from nodes import services
from nodes.keys import load_private_key, public_key_line
from nodes.models import Credential, Node
from tests import factories
from tests.jobs import factories as jf
from tests.nodes.keygen import ed25519_openssh

pytestmark = pytest.mark.django_db


def browser(make_user, role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, f"{role}-at-the-page"))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_maintenance_asks_first_and_records_the_reason_in_the_transition_and_the_event(make_user):
    node = factories.node(name="gpu-01")
    client = browser(make_user, "operator")
    assert f'href="/nodes/{node.pk}/maintenance/"' in client.get(f"/nodes/{node.pk}/").content.decode()
    confirm = client.get(f"/nodes/{node.pk}/maintenance/")
    assert confirm.status_code == 200 and 'name="enabled" value="1"' in confirm.content.decode()
    node.refresh_from_db()
    assert node.status == "online"
    response = client.post(f"/nodes/{node.pk}/maintenance/", {"enabled": "1", "reason": "PSU swap"})
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.status == "maintenance"
    assert node.status_history.first().reason == "PSU swap"
    event = Event.objects.filter(object_type="node", object_id=str(node.pk)).latest("id")
    assert event.detail["reason"] == "PSU swap" and event.actor == "operator-at-the-page"
    ended = client.post(f"/nodes/{node.pk}/maintenance/", {"enabled": "0"})
    assert ended.status_code == 302
    node.refresh_from_db()
    assert node.status == "unknown"


def test_a_viewer_may_not_enter_maintenance_and_an_operator_may_not_delete_or_reset(make_user):
    node = factories.node(host_key="ssh-ed25519 AAAA", host_key_fingerprint="SHA256:abc")
    viewer, operator = browser(make_user, "viewer"), browser(make_user, "operator")
    assert viewer.get(f"/nodes/{node.pk}/maintenance/").status_code == 403
    assert viewer.post(f"/nodes/{node.pk}/maintenance/", {"enabled": "1"}).status_code == 403
    assert operator.post(f"/nodes/{node.pk}/delete/").status_code == 403
    assert operator.post(f"/nodes/{node.pk}/reset-host-key/").status_code == 403
    node.refresh_from_db()
    assert node.status == "online" and node.host_key_fingerprint == "SHA256:abc"


def test_an_admin_deletes_a_node_with_a_reason(make_user):
    node = factories.node(name="old-box")
    response = browser(make_user, "admin").post(f"/nodes/{node.pk}/delete/", {"reason": "decommissioned"})
    assert response.status_code == 302 and response.url == "/nodes/"
    assert not Node.objects.filter(pk=node.pk).exists()
    event = Event.objects.get(verb="delete", object_type="node")
    assert event.detail == {"name": "old-box", "reason": "decommissioned"}


def test_deleting_a_node_that_serves_shows_the_409_detail_as_a_message(make_user):
    node = factories.node(name="busy-box")
    Instance.objects.create(job=jf.job(name="chat"), replica=0, node=node, state="running")
    client = browser(make_user, "admin")
    response = client.post(f"/nodes/{node.pk}/delete/", {"reason": "x"})
    assert response.status_code == 302 and response.url == f"/nodes/{node.pk}/"
    assert messages_of(response) == ["busy-box runs instances of chat: stop or move them first"]
    assert Node.objects.filter(pk=node.pk).exists()


def test_resetting_the_host_key_forgets_it_records_the_old_fingerprint_and_the_reason(make_user):
    node = factories.node(host_key="ssh-ed25519 AAAA", host_key_fingerprint="SHA256:old")
    client = browser(make_user, "admin")
    confirm = client.get(f"/nodes/{node.pk}/reset-host-key/")
    assert confirm.status_code == 200 and "SHA256:old" in confirm.content.decode()
    response = client.post(f"/nodes/{node.pk}/reset-host-key/", {"reason": "reinstalled"})
    assert response.status_code == 302
    node.refresh_from_db()
    assert node.host_key == "" and node.host_key_fingerprint == ""
    event = Event.objects.get(verb="reset_host_key")
    assert event.detail == {"old_fingerprint": "SHA256:old", "reason": "reinstalled"}


def test_the_credentials_page_shows_the_authorized_keys_line_and_never_the_private_key(make_user):
    private = ed25519_openssh()
    credential = services.create_credential(name="ops-key", username="root", private_key=private, passphrase=None)
    client = browser(make_user, "admin")
    text = client.get("/nodes/credentials/").content.decode()
    expected = public_key_line(load_private_key(private, None))
    assert f"{expected} boom-console:ops-key" in text
    assert "PRIVATE KEY" not in text.replace("OpenSSH or PEM", "")
    # A credential stored before the console kept the public half: derived from the decrypted key.
    Credential.objects.filter(pk=credential.pk).update(public_key="")
    assert expected in client.get("/nodes/credentials/").content.decode()


def test_an_admin_generates_an_ed25519_key_pair_encrypted_at_rest(make_user):
    client = browser(make_user, "admin")
    response = client.post("/nodes/credentials/generate/", {"generate-name": "fleet", "generate-username": "boom"})
    assert response.status_code == 302
    credential = Credential.objects.get(name="fleet")
    assert credential.username == "boom" and credential.key_type == "ssh-ed25519"
    pkey = paramiko.Ed25519Key.from_private_key(__import__("io").StringIO(credential.private_key()))
    assert public_key_line(pkey) == credential.public_key
    assert "PRIVATE KEY" not in credential.encrypted_private_key
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM nodes_credential")
        assert "PRIVATE KEY" not in repr(cursor.fetchall())
    page = client.get(response.url).content.decode()
    assert credential.public_key in page and credential.private_key() not in page
    event = Event.objects.get(verb="create", object_type="credential")
    assert event.detail == {"fingerprint": credential.fingerprint, "generated": True}
    assert "PRIVATE" not in repr(event.detail)
    again = client.post("/nodes/credentials/generate/", {"generate-name": "fleet", "generate-username": "boom"})
    assert again.status_code == 200 and again.context["generate_form"].errors["name"]


def test_a_credential_is_renamed_and_its_key_replaced_through_the_apis_validation(make_user):
    credential = services.create_credential(name="ops-key", username="root", private_key=ed25519_openssh(),
                                            passphrase=None)
    old_fingerprint = credential.fingerprint
    client = browser(make_user, "admin")
    bad = client.post(f"/nodes/credentials/{credential.pk}/edit/",
                      {"name": "ops-key", "username": "root", "private_key": "not a key"})
    assert bad.status_code == 200 and bad.context["form"].errors["private_key"]
    kept = client.post(f"/nodes/credentials/{credential.pk}/edit/", {"name": "ops", "username": "admin"})
    assert kept.status_code == 302
    credential.refresh_from_db()
    assert (credential.name, credential.username, credential.fingerprint) == ("ops", "admin", old_fingerprint)
    client.post(f"/nodes/credentials/{credential.pk}/edit/",
                {"name": "ops", "username": "admin", "private_key": ed25519_openssh()})
    credential.refresh_from_db()
    assert credential.fingerprint != old_fingerprint
    fields = [e.detail["fields"] for e in Event.objects.filter(verb="update", object_type="credential").order_by("id")]
    assert fields[-1] == ["private_key"] and "PRIVATE" not in repr(fields)


def test_deleting_a_credential_in_use_is_refused_with_a_message_and_an_unused_one_is_deleted(make_user):
    credential = services.create_credential(name="ops-key", username="root", private_key=ed25519_openssh(),
                                            passphrase=None)
    node = factories.node(name="gpu-01", credential=credential)
    client = browser(make_user, "admin")
    response = client.post(f"/nodes/credentials/{credential.pk}/delete/", {"reason": "rotated"})
    assert messages_of(response) == ["credential ops-key is used by node(s) gpu-01: give them another credential "
                                     "first"]
    assert Credential.objects.filter(pk=credential.pk).exists()
    node.delete()
    response = client.post(f"/nodes/credentials/{credential.pk}/delete/", {"reason": "rotated"})
    assert not Credential.objects.filter(pk=credential.pk).exists()
    assert Event.objects.get(verb="delete", object_type="credential").detail == {"name": "ops-key",
                                                                                 "reason": "rotated"}
    assert browser(make_user, "operator").get("/nodes/credentials/").status_code == 403


def test_the_api_keeps_the_reason_of_a_host_key_reset_and_of_deletes(admin_api):
    node = factories.node(name="api-box", host_key="ssh-ed25519 AAAA", host_key_fingerprint="SHA256:old")
    response = admin_api.post(f"/api/v1/nodes/{node.pk}/reset-host-key/", {"reason": "reimaged"}, format="json")
    assert response.status_code == 200
    assert Event.objects.get(verb="reset_host_key").detail == {"old_fingerprint": "SHA256:old", "reason": "reimaged"}
    assert admin_api.delete(f"/api/v1/nodes/{node.pk}/?reason=gone").status_code == 204
    assert Event.objects.get(verb="delete", object_type="node").detail == {"name": "api-box", "reason": "gone"}
    credential = services.create_credential(name="k1", username="root", private_key=ed25519_openssh(),
                                            passphrase=None)
    assert admin_api.delete(f"/api/v1/credentials/{credential.pk}/?reason=rotated").status_code == 204
    assert Event.objects.get(verb="delete", object_type="credential").detail == {"name": "k1", "reason": "rotated"}
