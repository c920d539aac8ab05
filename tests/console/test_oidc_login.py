"""Sign-in with an OpenID Connect provider (issue 13, deliverable 7) against a real provider that the tests
start: the npm package oidc-provider (tests/oidcd.py, tests/oidc_provider.mjs). The whole authorization code
flow is driven with HTTP clients: the console's side with Django's test client, the provider's (its login
and consent forms) with httpx. Groups map to viewer/operator/admin, users are created at their first login,
a user with no role group is refused and not created, local accounts keep working and are never taken over."""

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.auth.models import User

from console.core import oidc
from console.core.oidc_config import BACKEND, oidc_settings
from console.core.permissions import user_role
from tests.oidcd import OpenIDProvider, require_oidc_provider

pytestmark = pytest.mark.integration

REDIRECT_URI = "http://testserver/oidc/callback/"
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "given_name": "Alice", "family_name": "Admin",
              "preferred_username": "alice", "groups": ["console-admins", "console-viewers"]},
    "oscar": {"email": "oscar@example.com", "given_name": "Oscar", "family_name": "Operator",
              "preferred_username": "oscar", "groups": ["console-operators"]},
    "vera": {"email": "vera@example.com", "given_name": "Vera", "family_name": "Viewer",
             "preferred_username": "vera", "groups": "console-viewers"},
    "nora": {"email": "nora@example.com", "given_name": "Nora", "family_name": "Nobody",
             "preferred_username": "nora", "groups": ["everyone"]},
    "admin-at-idp": {"email": "admin@example.com", "preferred_username": "admin", "groups": ["console-admins"]},
}


@pytest.fixture(scope="module")
def provider():
    require_oidc_provider()
    with OpenIDProvider("boom-console", "client-secret-for-tests", REDIRECT_URI, ACCOUNTS) as server:
        yield server


def configure(settings, tmp_path, provider, **extra):
    secret_file = tmp_path / "oidc-secret"
    secret_file.write_text("client-secret-for-tests\n")
    env = {"CONSOLE_OIDC_ISSUER": provider.issuer, "CONSOLE_OIDC_CLIENT_ID": "boom-console",
           "CONSOLE_OIDC_CLIENT_SECRET_FILE": str(secret_file),
           "CONSOLE_OIDC_SCOPES": "openid email profile groups", "CONSOLE_OIDC_PROVIDER_NAME": "Example SSO",
           "CONSOLE_OIDC_VIEWER_GROUP": "console-viewers", "CONSOLE_OIDC_OPERATOR_GROUP": "console-operators",
           "CONSOLE_OIDC_ADMIN_GROUP": "console-admins", **extra}
    for name, value in oidc_settings(env).items():
        setattr(settings, name, value)
    settings.AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend",
                                        "django.contrib.auth.backends.ModelBackend", BACKEND]


@pytest.fixture
def sso(provider, settings, tmp_path):
    configure(settings, tmp_path, provider)
    return provider


def sign_in(client, provider, login: str, next_url: str = "") -> str:
    """The authorization code flow; returns where the console sends the browser at the end."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start
    location = start["Location"]
    assert location.startswith(provider.issuer + "/")
    query = parse_qs(urlsplit(location).query)
    assert query["client_id"] == ["boom-console"] and query["code_challenge_method"] == ["S256"]
    with httpx.Client(timeout=10) as browser:
        for _ in range(12):
            if location.startswith(REDIRECT_URI):
                break
            response = browser.get(location)
            if response.status_code in (302, 303):
                location = httpx.URL(location).join(response.headers["location"]).__str__()
                continue
            # The provider's login or consent form: post it as a browser would.
            assert response.status_code == 200, response.text[:500]
            action = unescape(re.search(r'<form[^>]*action="([^"]+)"', response.text).group(1))
            fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                                     response.text))
            if 'name="login"' in response.text:
                fields.update(login=login, password="any")
            response = browser.post(httpx.URL(location).join(action), data=fields)
            assert response.status_code in (302, 303), response.text[:500]
            location = httpx.URL(location).join(response.headers["location"]).__str__()
        else:
            pytest.fail("the provider never redirected back to the console")
    split = urlsplit(location)
    done = client.get(split.path, dict(parse_qs(split.query)))
    assert done.status_code == 302
    return done["Location"]


def test_the_login_page_offers_the_provider_only_when_configured(db, client, settings, tmp_path, provider):
    assert "Sign in with" not in client.get("/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    configure(settings, tmp_path, provider)
    page = client.get("/login/?next=/jobs/").content.decode()
    assert "Sign in with Example SSO" in page and 'href="/oidc/authenticate/?next=/jobs/"' in page


def test_users_are_created_at_the_first_login_with_their_strongest_role(db, client, sso):
    assert sign_in(client, sso, "alice", next_url="/jobs/") == "/jobs/"
    alice = User.objects.get(username="oidc-alice")
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Admin", "alice@example.com")
    assert user_role(alice) == "admin" and list(alice.groups.values_list("name", flat=True)) == ["admin"]
    assert not alice.has_usable_password()
    assert client.session["_auth_user_id"] == str(alice.pk)
    assert client.get("/").status_code == 200 and client.get("/api/v1/nodes/").status_code == 200
    client.logout()
    assert sign_in(client, sso, "oscar") == "/"
    assert user_role(User.objects.get(username="oidc-oscar")) == "operator"
    client.logout()
    sign_in(client, sso, "vera")
    assert user_role(User.objects.get(username="oidc-vera")) == "viewer"
    # The second login finds the same user (by the subject, not the e-mail) and sets the role again.
    client.logout()
    User.objects.get(username="oidc-vera").groups.clear()
    sign_in(client, sso, "vera")
    assert User.objects.filter(email="vera@example.com").count() == 1
    assert user_role(User.objects.get(username="oidc-vera")) == "viewer"


def test_a_user_with_no_role_group_is_refused_and_not_created(db, client, sso):
    assert sign_in(client, sso, "nora") == "/login/?oidc=failed"
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="oidc-nora").exists()
    page = client.get("/login/?oidc=failed").content.decode()
    assert "Sign-in with Example SSO failed" in page


def test_local_accounts_keep_working_and_are_never_taken_over(db, client, provider, settings, tmp_path):
    """Even when the console names users by a claim the provider lets people choose (preferred_username, no
    prefix), a local account with a password is not signed in through the provider."""
    configure(settings, tmp_path, provider, CONSOLE_OIDC_USERNAME_CLAIM="preferred_username",
              CONSOLE_OIDC_USERNAME_PREFIX="")
    local = User.objects.create_superuser("admin", email="admin@example.com", password="local-admin-pw")
    assert sign_in(client, provider, "admin-at-idp") == "/login/?oidc=failed"
    assert "_auth_user_id" not in client.session
    assert client.post("/login/", {"username": "admin", "password": "local-admin-pw"}).status_code == 302
    assert client.session["_auth_user_id"] == str(local.pk)
    client.logout()
    # The provider's user of another name gets its own account, even with a local account's e-mail.
    assert sign_in(client, provider, "alice") == "/"
    assert User.objects.get(username="alice").pk != local.pk


def test_local_logins_do_not_need_the_provider(db, client, settings, tmp_path, provider):
    configure(settings, tmp_path, provider, CONSOLE_OIDC_ISSUER="http://127.0.0.1:1")
    oidc._discovery.pop("http://127.0.0.1:1", None)
    User.objects.create_user("local", password="local-pw")
    assert client.post("/login/", {"username": "local", "password": "local-pw"}).status_code == 302


def test_oidc_settings_need_an_issuer_or_endpoints_a_secret_and_a_role_group(tmp_path):
    from console.core.env import EnvError

    assert oidc_settings({}) == {}
    with pytest.raises(EnvError, match="CONSOLE_OIDC_ISSUER"):
        oidc_settings({"CONSOLE_OIDC_CLIENT_ID": "c"})
    with pytest.raises(EnvError, match="CLIENT_SECRET"):
        oidc_settings({"CONSOLE_OIDC_CLIENT_ID": "c", "CONSOLE_OIDC_ISSUER": "https://idp"})
    with pytest.raises(EnvError, match="VIEWER_GROUP"):
        oidc_settings({"CONSOLE_OIDC_CLIENT_ID": "c", "CONSOLE_OIDC_ISSUER": "https://idp",
                       "CONSOLE_OIDC_CLIENT_SECRET": "s"})
    explicit = oidc_settings({"CONSOLE_OIDC_CLIENT_ID": "c", "CONSOLE_OIDC_CLIENT_SECRET": "s",
                              "CONSOLE_OIDC_ADMIN_GROUP": "a",
                              "CONSOLE_OIDC_AUTHORIZATION_ENDPOINT": "https://idp/auth",
                              "CONSOLE_OIDC_TOKEN_ENDPOINT": "https://idp/token",
                              "CONSOLE_OIDC_USERINFO_ENDPOINT": "https://idp/me",
                              "CONSOLE_OIDC_JWKS_ENDPOINT": "https://idp/jwks"})
    assert explicit["OIDC_OP_TOKEN_ENDPOINT"] == "https://idp/token" and explicit["OIDC_USE_PKCE"] is True


def test_role_and_user_name_rules():
    groups = {"viewer": "v", "operator": "o", "admin": None}
    assert oidc.role_for_claim(["v", "o"], groups) == "operator"
    assert oidc.role_for_claim("v", groups) == "viewer"
    assert oidc.role_for_claim(None, groups) is None and oidc.role_for_claim([1, {}], groups) is None
    assert oidc.username_for({"sub": "248289761001"}) == "oidc-248289761001"
    assert oidc.username_for({"sub": "a b/c"}).startswith("oidc-") and len(oidc.username_for({"sub": "a b/c"})) == 37
    assert oidc.username_for({}) is None
