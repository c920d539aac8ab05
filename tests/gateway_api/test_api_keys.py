"""API keys: created by operators and admins, shown once, stored as a digest, revoked idempotently."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from console.core.models import ApiToken, Event
from jobs.gateway import keys
from jobs.gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def create(client, **body):
    return client.post("/api/v1/api-keys/", {"name": "app", **body}, format="json")


def test_an_operator_creates_a_key_that_is_shown_once_and_stored_only_as_a_digest(operator_api):
    response = create(operator_api, models=["qwen-chat"], rpm=60, tpm=10000, max_concurrency=4)
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    assert secret.startswith("bk-") and body["prefix"] == secret[:12]
    stored = ApiKey.objects.get()
    assert stored.digest == keys.digest(secret) and stored.owner == operator_api.user
    assert secret not in str(ApiKey.objects.values().get())
    listed = operator_api.get("/api/v1/api-keys/").json()["results"]
    assert [k["prefix"] for k in listed] == [body["prefix"]] and "key" not in listed[0]
    assert set(listed[0]) >= {"id", "name", "prefix", "models", "expires_at", "rpm", "tpm", "max_concurrency",
                              "owner", "created_at", "last_used_at", "revoked"}
    assert listed[0]["owner"] == operator_api.user.username
    assert "key" not in operator_api.get(f"/api/v1/api-keys/{body['id']}/").json()


def test_creating_a_key_is_audited_without_the_key(operator_api):
    secret = create(operator_api).json()["key"]
    event = Event.objects.get(verb="create", object_type="apikey")
    assert event.actor == operator_api.user.username
    assert secret not in str(event.detail) and secret not in event.object_repr


def test_a_viewer_may_not_create_keys_and_sees_none(viewer_api, admin_api):
    create(admin_api)
    assert create(viewer_api).status_code == 403
    assert viewer_api.get("/api/v1/api-keys/").json()["results"] == []


def client_of(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.objects.create(user=user).key}")
    return client


def test_an_operator_sees_and_revokes_only_their_own_keys_and_an_admin_all(client_for, make_user):
    first, admin = client_for("operator"), client_for("admin")
    second = client_of(make_user("operator", "other-operator"))
    mine = create(first, name="mine").json()["id"]
    theirs = create(second, name="theirs").json()["id"]
    assert [k["name"] for k in first.get("/api/v1/api-keys/").json()["results"]] == ["mine"]
    assert first.post(f"/api/v1/api-keys/{theirs}/revoke/").status_code == 404
    assert {k["name"] for k in admin.get("/api/v1/api-keys/").json()["results"]} == {"mine", "theirs"}
    assert admin.post(f"/api/v1/api-keys/{theirs}/revoke/").json()["revoked"] is True
    assert first.post(f"/api/v1/api-keys/{mine}/revoke/").status_code == 200


def test_revoking_sets_the_time_bumps_updated_at_and_is_idempotent(operator_api):
    key_id = create(operator_api).json()["id"]
    before = ApiKey.objects.get().updated_at
    first = operator_api.post(f"/api/v1/api-keys/{key_id}/revoke/")
    assert first.status_code == 200 and first.json()["revoked"] is True
    key = ApiKey.objects.get()
    assert key.revoked and key.revoked_at is not None and key.updated_at > before
    again = operator_api.post(f"/api/v1/api-keys/{key_id}/revoke/")
    assert again.status_code == 200 and ApiKey.objects.get().revoked_at == key.revoked_at
    assert Event.objects.filter(verb="revoke", object_type="apikey").count() == 1


def test_a_viewer_may_not_revoke(viewer_api, admin_api):
    key_id = create(admin_api).json()["id"]
    assert viewer_api.post(f"/api/v1/api-keys/{key_id}/revoke/").status_code == 403
    assert not ApiKey.objects.get().revoked


@pytest.mark.parametrize("field, value", [
    ("models", [1, 2]),
    ("models", "qwen"),
    ("models", ["x" * 201]),
    ("rpm", -1),
    ("tpm", 0),
    ("max_concurrency", -5),
    ("expires_at", (timezone.now() - timedelta(hours=1)).isoformat()),
    ("name", ""),
])
def test_bad_key_input_is_a_400_naming_the_field_and_nothing_is_saved(operator_api, field, value):
    response = create(operator_api, **{field: value})
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not ApiKey.objects.exists()


def test_models_may_name_routes_served_names_and_aliases_freely(operator_api):
    response = create(operator_api, models=["canary", "qwen-chat", "Qwen2.5-7B@prod"])
    assert response.status_code == 201
    assert response.json()["models"] == ["canary", "qwen-chat", "Qwen2.5-7B@prod"]
