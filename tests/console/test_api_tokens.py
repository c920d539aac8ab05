"""API tokens are stored hashed (issue 13, deliverable 3): only a SHA-256 digest and an 8-character prefix
are in the database; ``Authorization: Token <key>`` keeps working, and so do keys an older version stored."""

import hashlib
import importlib
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from console.core.models import ApiToken
from console.core.tokens import user_for_key

pytestmark = pytest.mark.django_db


def api(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_only_a_digest_is_stored_and_the_header_keeps_working(make_user):
    user = make_user("viewer")
    token = ApiToken.objects.create(user=user)
    assert len(token.key) == 40
    stored = ApiToken.objects.get(user=user)
    assert stored.digest == hashlib.sha256(token.key.encode()).hexdigest()
    assert stored.prefix == token.key[:8]
    assert not hasattr(stored, "key")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM console_apitoken")
        assert token.key not in repr(cursor.fetchall())
    assert api(token.key).get("/api/v1/nodes/").status_code == 200
    assert api(token.key[:-1] + "x").get("/api/v1/nodes/").status_code == 401
    assert api(stored.digest).get("/api/v1/nodes/").status_code == 401
    assert user_for_key(token.key) == user
    assert user_for_key(stored.digest) is None
    user.is_active = False
    user.save()
    assert api(token.key).get("/api/v1/nodes/").status_code == 401


def test_drf_create_token_prints_a_key_once_and_replaces_with_r(make_user):
    user = make_user("admin", "deploy-bot")
    out = StringIO()
    call_command("drf_create_token", "deploy-bot", stdout=out)
    first = out.getvalue().split()[2]
    assert out.getvalue().strip() == f"Generated token {first} for user deploy-bot"
    assert user_for_key(first) == user
    with pytest.raises(CommandError, match="-r"):
        call_command("drf_create_token", "deploy-bot", stdout=StringIO())
    out = StringIO()
    call_command("drf_create_token", "-r", "deploy-bot", stdout=out)
    second = out.getvalue().split()[2]
    assert second != first
    assert user_for_key(second) == user and user_for_key(first) is None
    with pytest.raises(CommandError, match="does not exist"):
        call_command("drf_create_token", "nobody-here", stdout=StringIO())


def test_migration_hashes_keys_an_older_version_stored(make_user):
    """Keys in DRF's authtoken table are moved into the hashed table: the holder's key keeps working and
    the plain key is gone."""
    user = make_user("operator")
    key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp, user_id bigint)")
    try:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, CURRENT_TIMESTAMP, %s)",
                           [key, user.id])
        migration = importlib.import_module("console.migrations.0004_api_tokens_hashed")
        migration.hash_existing_tokens(django_apps, SimpleNamespace(connection=connection))
        assert user_for_key(key) == user
        assert api(key).get("/api/v1/nodes/").status_code == 200
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM authtoken_token")
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE authtoken_token")
