"""Sign-in with an OpenID Connect provider (mozilla-django-oidc; docs/security-auth.md).

console.core.oidc_config turns the ``CONSOLE_OIDC_*`` variables into the library's settings. Endpoints not
configured explicitly are read from the issuer's discovery document at the first sign-in (and kept for the
process), so the console starts, and local and directory accounts sign in, while the provider is down.

``ConsoleOIDCBackend`` maps a claim (``groups`` by default) to the console's roles, the strongest wins and
is set again at every login; a user whose claim names no role group is refused and not created. The console
user is found by a name derived from a stable claim (``oidc-<sub>`` by default), never by e-mail; a user of
that name with a usable local password is never signed in through the provider.
"""

from __future__ import annotations

import hashlib
import re
import threading

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import Http404
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from console.core.directory import set_role
from console.core.permissions import ADMIN, OPERATOR, VIEWER

DISCOVERED = {"OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint", "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
              "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint", "OIDC_OP_JWKS_ENDPOINT": "jwks_uri"}
_discovery: dict[str, dict] = {}
_discovery_lock = threading.Lock()
USERNAME_RE = re.compile(r"[A-Za-z0-9@.+_-]{1,120}")


def enabled() -> bool:
    return bool(getattr(settings, "OIDC_RP_CLIENT_ID", None))


def discovery(issuer: str) -> dict:
    """The issuer's ``/.well-known/openid-configuration`` (fetched once per process; its ``issuer`` must match)."""
    with _discovery_lock:
        if issuer not in _discovery:
            response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=import_from_settings(
                "OIDC_TIMEOUT", 10), verify=import_from_settings("OIDC_VERIFY_SSL", True), allow_redirects=False)
            response.raise_for_status()
            document = response.json()
            if str(document.get("issuer", "")).rstrip("/") != issuer:
                raise ImproperlyConfigured(
                    f"the discovery document of {issuer} names issuer {document.get('issuer')!r}")
            _discovery[issuer] = document
        return _discovery[issuer]


def get_setting(attr, *args):
    """The library's settings, with the endpoints discovered from ``CONSOLE_OIDC_ISSUER`` when not set."""
    if attr in DISCOVERED and not getattr(settings, attr, None):
        issuer = getattr(settings, "CONSOLE_OIDC_ISSUER", None)
        if issuer:
            value = discovery(issuer).get(DISCOVERED[attr])
            if value:
                return value
    return import_from_settings(attr, *args)


def role_for_claim(value, role_groups) -> str | None:
    """The strongest role whose group value is in the claim (a list of names, or one name)."""
    if isinstance(value, str):
        held = {value}
    elif isinstance(value, list | tuple):
        held = {item for item in value if isinstance(item, str)}
    else:
        held = set()
    for role in (ADMIN, OPERATOR, VIEWER):
        group = role_groups.get(role)
        if group and group in held:
            return role
    return None


def username_for(claims) -> str | None:
    """``CONSOLE_OIDC_USERNAME_PREFIX`` + the ``CONSOLE_OIDC_USERNAME_CLAIM`` claim (``oidc-`` + ``sub`` by
    default); a value with other characters than Django allows in user names, or too long, is replaced by
    its SHA-256 (32 hex digits)."""
    value = claims.get(getattr(settings, "CONSOLE_OIDC_USERNAME_CLAIM", "sub"))
    if not isinstance(value, str) or not value:
        return None
    if not USERNAME_RE.fullmatch(value):
        value = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return getattr(settings, "CONSOLE_OIDC_USERNAME_PREFIX", "oidc-") + value


class ConsoleOIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc with discovered endpoints, the console's role mapping and local accounts kept local."""

    get_settings = staticmethod(get_setting)

    def __init__(self, *args, **kwargs):
        # The library reads the endpoints here, for every sign-in of any kind; they are read when needed.
        self.UserModel = get_user_model()

    OIDC_OP_TOKEN_ENDPOINT = property(lambda self: get_setting("OIDC_OP_TOKEN_ENDPOINT"))
    OIDC_OP_USER_ENDPOINT = property(lambda self: get_setting("OIDC_OP_USER_ENDPOINT"))
    OIDC_OP_JWKS_ENDPOINT = property(lambda self: get_setting("OIDC_OP_JWKS_ENDPOINT", None))
    OIDC_RP_CLIENT_ID = property(lambda self: get_setting("OIDC_RP_CLIENT_ID"))
    OIDC_RP_CLIENT_SECRET = property(lambda self: get_setting("OIDC_RP_CLIENT_SECRET"))
    OIDC_RP_SIGN_ALGO = property(lambda self: get_setting("OIDC_RP_SIGN_ALGO", "RS256"))
    OIDC_RP_IDP_SIGN_KEY = property(lambda self: get_setting("OIDC_RP_IDP_SIGN_KEY", None))

    def authenticate(self, request, **kwargs):
        if not enabled() or request is None or "code" not in request.GET:
            return None
        return super().authenticate(request, **kwargs)

    def role(self, claims) -> str | None:
        return role_for_claim(claims.get(getattr(settings, "CONSOLE_OIDC_GROUPS_CLAIM", "groups")),
                              getattr(settings, "CONSOLE_OIDC_ROLE_GROUPS", {}))

    def verify_claims(self, claims):
        return username_for(claims) is not None and self.role(claims) is not None

    def filter_users_by_claims(self, claims):
        users = self.UserModel.objects.filter(username__iexact=username_for(claims))
        if any(user.has_usable_password() for user in users):
            raise SuspiciousOperation("a local account has this user name")
        return users

    def create_user(self, claims):
        user = self.UserModel.objects.create_user(username_for(claims))  # no usable password
        return self.update_user(user, claims)

    def update_user(self, user, claims):
        fields = {"first_name": claims.get("given_name"), "last_name": claims.get("family_name"),
                  "email": claims.get("email")}
        changed = [name for name, value in fields.items()
                   if isinstance(value, str) and getattr(user, name) != value[:150]]
        for name in changed:
            setattr(user, name, fields[name][:150])
        if changed:
            user.save(update_fields=changed)
        set_role(user, self.role(claims))
        return user


class ConsoleOIDCRequestView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: redirects to the provider (404 when OIDC is not configured)."""

    get_settings = staticmethod(get_setting)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request):
        if not enabled():
            raise Http404
        self.OIDC_OP_AUTH_ENDPOINT = get_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
        self.OIDC_RP_CLIENT_ID = get_setting("OIDC_RP_CLIENT_ID")
        return super().get(request)


class ConsoleOIDCCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: the provider's answer; signs the user in or sends them back to the login page."""

    get_settings = staticmethod(get_setting)

    def get(self, request):
        if not enabled():
            raise Http404
        return super().get(request)
