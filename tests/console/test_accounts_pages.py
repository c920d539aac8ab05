"""Users, roles and API tokens managed in the console (issue 17): admins list, add, change the role of and
deactivate users; everyone creates (shown once), lists and revokes their own tokens; admins revoke anyone's.
Every change is in the audit log, never a password or a key."""

import importlib
from io import StringIO

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from console.core.models import ApiToken, Event
from console.core.permissions import user_role

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def fresh(user):
    return User.objects.get(pk=user.pk)


def test_only_admins_reach_the_users_page(make_user):
    assert browser(make_user("operator")).get("/users/").status_code == 403
    assert browser(make_user("viewer")).post("/users/add/", {"username": "x", "role": "admin"}).status_code == 403
    assert not User.objects.filter(username="x").exists()
    page = browser(make_user("admin")).get("/users/")
    assert page.status_code == 200 and "operator-user" in page.content.decode()


def test_an_admin_adds_a_user_with_a_role_and_a_generated_password_shown_once(make_user):
    client = browser(make_user("admin"))
    response = client.post("/users/add/", {"username": "alice", "email": "alice@example.com", "role": "operator"})
    assert response.status_code == 200
    password = response.context["password"]
    assert len(password) >= 12 and password in response.content.decode()
    alice = User.objects.get(username="alice")
    assert user_role(alice) == "operator" and alice.check_password(password)
    event = Event.objects.get(verb="create", object_type="user")
    assert event.detail == {"role": "operator", "email": True} and password not in repr(event.detail)
    assert password not in client.get("/users/").content.decode()
    clash = client.post("/users/add/", {"username": "ALICE", "role": "viewer"})
    assert clash.status_code == 200 and clash.context["form"].errors["username"]
    weak = client.post("/users/add/", {"username": "bob", "role": "viewer", "password": "123"})
    assert weak.status_code == 200 and weak.context["form"].errors["password"]


def test_an_admin_changes_a_role_and_the_last_admin_cannot_lose_theirs(make_user):
    admin, bob = make_user("admin", "root-admin"), make_user("viewer", "bob")
    client = browser(admin)
    client.post(f"/users/{bob.pk}/role/", {f"u{bob.pk}-role": "operator", f"u{bob.pk}-reason": "on call"})
    assert user_role(fresh(bob)) == "operator"
    assert Event.objects.get(verb="role").detail == {"from": "viewer", "to": "operator", "reason": "on call"}
    response = client.post(f"/users/{admin.pk}/role/", {f"u{admin.pk}-role": "viewer"})
    assert [str(m) for m in get_messages(response.wsgi_request)][-1] == (
        "root-admin is the last active admin: make another user an admin first")
    assert user_role(fresh(admin)) == "admin"
    bad = client.post(f"/users/{bob.pk}/role/", {f"u{bob.pk}-role": "root"})
    assert bad.status_code == 302 and user_role(fresh(bob)) == "operator"


def test_deactivating_asks_for_a_reason_ends_token_access_and_can_be_undone(make_user):
    admin, bob = make_user("admin"), make_user("operator", "bob")
    key = ApiToken.objects.create(user=bob, name="ci").key
    assert api(key).get("/api/v1/nodes/").status_code == 200
    client = browser(admin)
    assert client.get(f"/users/{bob.pk}/deactivate/").status_code == 200
    client.post(f"/users/{bob.pk}/deactivate/", {"reason": "left the team"})
    assert not fresh(bob).is_active
    assert Event.objects.get(verb="deactivate").detail == {"reason": "left the team"}
    assert api(key).get("/api/v1/nodes/").status_code == 401
    own = client.post(f"/users/{admin.pk}/deactivate/", {"reason": ""})
    assert [str(m) for m in get_messages(own.wsgi_request)][-1] == "you cannot deactivate your own account"
    assert fresh(admin).is_active
    client.post(f"/users/{bob.pk}/activate/")
    assert fresh(bob).is_active and api(key).get("/api/v1/nodes/").status_code == 200


def test_a_user_creates_a_token_shown_once_uses_it_and_revokes_it_with_a_reason(make_user):
    viewer = make_user("viewer", "vera")
    client = browser(viewer)
    response = client.post("/tokens/", {"name": "grafana"})
    assert response.status_code == 200
    key = response.context["created"].key
    assert key in response.content.decode()
    token = ApiToken.objects.get(user=viewer, name="grafana")
    assert token.digest != key and key not in client.get("/tokens/").content.decode()
    assert api(key).get("/api/v1/nodes/").status_code == 200
    created = Event.objects.get(verb="create", object_type="apitoken")
    assert key not in repr(created.detail) and created.detail["prefix"] == key[:8]
    second = client.post("/tokens/", {"name": "ci"}).context["created"].key
    assert api(second).get("/api/v1/nodes/").status_code == 200 and api(key).get("/api/v1/nodes/").status_code == 200
    assert client.get(f"/tokens/{token.pk}/revoke/").status_code == 200
    client.post(f"/tokens/{token.pk}/revoke/", {"reason": "dashboard retired"})
    assert api(key).get("/api/v1/nodes/").status_code == 401
    assert api(second).get("/api/v1/nodes/").status_code == 200
    revoked = Event.objects.get(verb="revoke")
    assert revoked.detail == {"user": "vera", "name": "grafana", "prefix": key[:8], "reason": "dashboard retired"}
    assert client.post("/tokens/", {"name": ""}).context["form"].errors["name"]


def test_a_user_may_not_revoke_someone_elses_token_but_an_admin_may(make_user):
    alice_token = ApiToken.objects.create(user=make_user("operator", "alice"), name="ci")
    mallory = browser(make_user("viewer", "mallory"))
    assert "alice" not in mallory.get("/tokens/").content.decode()
    assert mallory.post(f"/tokens/{alice_token.pk}/revoke/").status_code == 403
    assert ApiToken.objects.filter(pk=alice_token.pk).exists()
    admin = browser(make_user("admin"))
    assert alice_token.prefix in admin.get("/tokens/").content.decode()
    admin.post(f"/tokens/{alice_token.pk}/revoke/", {"reason": "leaked in a log"})
    assert not ApiToken.objects.filter(pk=alice_token.pk).exists()


def test_the_users_page_costs_the_same_queries_for_three_users_or_thirty(make_user):
    admin = browser(make_user("admin"))
    for n in range(2):
        make_user("viewer", f"v{n}")
    admin.get("/users/")  # warm the session and the content types
    with CaptureQueriesContext(connection) as few:
        assert admin.get("/users/").status_code == 200
    for n in range(2, 30):
        make_user("operator" if n % 2 else "viewer", f"v{n}")
    with CaptureQueriesContext(connection) as many:
        page = admin.get("/users/")
    assert len(many.captured_queries) == len(few.captured_queries)
    assert page.content.decode().count('<tr id="user-') == 31


def test_tokens_from_before_names_become_the_commands_token_and_page_tokens_are_left_to_their_owner(make_user):
    bot = make_user("admin", "deploy-bot")
    old = ApiToken.objects.create(user=bot)  # as 0004 or the old command left it: no name
    mine = ApiToken.objects.create(user=bot, name="grafana")
    importlib.import_module("console.migrations.0005_api_tokens_named").name_existing_tokens(django_apps, None)
    assert ApiToken.objects.get(pk=old.pk).name == "drf_create_token"
    with pytest.raises(CommandError, match="-r"):
        call_command("drf_create_token", "deploy-bot", stdout=StringIO())
    call_command("drf_create_token", "-r", "deploy-bot", stdout=StringIO())
    assert not ApiToken.objects.filter(pk=old.pk).exists()
    assert ApiToken.objects.filter(pk=mine.pk).exists()
    assert api(mine.key).get("/api/v1/nodes/").status_code == 200
