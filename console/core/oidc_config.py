"""``CONSOLE_OIDC_*`` environment variables to mozilla-django-oidc's ``OIDC_*`` settings (read by
console/settings.py when ``CONSOLE_OIDC_CLIENT_ID`` is set; docs/security-auth.md). Imports no model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from console.core.env import EnvError
from console.core.ldap_config import _bool, _get

ROLE_ENV = {"viewer": "CONSOLE_OIDC_VIEWER_GROUP", "operator": "CONSOLE_OIDC_OPERATOR_GROUP",
            "admin": "CONSOLE_OIDC_ADMIN_GROUP"}
ENDPOINT_ENV = {"OIDC_OP_AUTHORIZATION_ENDPOINT": "CONSOLE_OIDC_AUTHORIZATION_ENDPOINT",
                "OIDC_OP_TOKEN_ENDPOINT": "CONSOLE_OIDC_TOKEN_ENDPOINT",
                "OIDC_OP_USER_ENDPOINT": "CONSOLE_OIDC_USERINFO_ENDPOINT",
                "OIDC_OP_JWKS_ENDPOINT": "CONSOLE_OIDC_JWKS_ENDPOINT"}
BACKEND = "console.core.oidc.ConsoleOIDCBackend"


def oidc_settings(environ: Mapping[str, str]) -> dict:
    """mozilla-django-oidc's settings from ``CONSOLE_OIDC_*`` (empty when ``CONSOLE_OIDC_CLIENT_ID`` is unset).

    Endpoints not given explicitly are discovered from ``CONSOLE_OIDC_ISSUER`` at the first sign-in
    (console.core.oidc), so the console starts while the provider is down."""
    client_id = _get(environ, "CONSOLE_OIDC_CLIENT_ID")
    if not client_id:
        return {}
    issuer = _get(environ, "CONSOLE_OIDC_ISSUER")
    endpoints = {name: _get(environ, var) for name, var in ENDPOINT_ENV.items()}
    if not issuer and not all(endpoints.values()):
        raise EnvError("CONSOLE_OIDC_CLIENT_ID needs CONSOLE_OIDC_ISSUER, or all of "
                       + ", ".join(ENDPOINT_ENV.values()))
    secret = _get(environ, "CONSOLE_OIDC_CLIENT_SECRET", "")
    secret_file = _get(environ, "CONSOLE_OIDC_CLIENT_SECRET_FILE")
    if secret_file:
        secret = Path(secret_file).read_text().strip()
    if not secret:
        raise EnvError("CONSOLE_OIDC_CLIENT_ID needs CONSOLE_OIDC_CLIENT_SECRET or CONSOLE_OIDC_CLIENT_SECRET_FILE")
    role_groups = {role: _get(environ, name) for role, name in ROLE_ENV.items()}
    if not any(role_groups.values()):
        raise EnvError("CONSOLE_OIDC_CLIENT_ID needs at least one of " + ", ".join(ROLE_ENV.values()))
    token_auth = _get(environ, "CONSOLE_OIDC_TOKEN_AUTH", "basic")
    if token_auth not in ("basic", "post"):
        raise EnvError(f"CONSOLE_OIDC_TOKEN_AUTH must be basic or post, got {token_auth!r}")
    ca_file = _get(environ, "CONSOLE_OIDC_CA_FILE")
    values = {
        "CONSOLE_OIDC_ISSUER": issuer.rstrip("/") if issuer else None,
        "CONSOLE_OIDC_PROVIDER_NAME": _get(environ, "CONSOLE_OIDC_PROVIDER_NAME", "OpenID Connect"),
        "CONSOLE_OIDC_GROUPS_CLAIM": _get(environ, "CONSOLE_OIDC_GROUPS_CLAIM", "groups"),
        "CONSOLE_OIDC_ROLE_GROUPS": role_groups,
        "CONSOLE_OIDC_USERNAME_CLAIM": _get(environ, "CONSOLE_OIDC_USERNAME_CLAIM", "sub"),
        "CONSOLE_OIDC_USERNAME_PREFIX": environ.get("CONSOLE_OIDC_USERNAME_PREFIX", "oidc-").strip(),
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": _get(environ, "CONSOLE_OIDC_SIGN_ALGO", "RS256"),
        "OIDC_RP_SCOPES": _get(environ, "CONSOLE_OIDC_SCOPES", "openid email profile"),
        "OIDC_USE_PKCE": _bool(environ, "CONSOLE_OIDC_USE_PKCE", True),
        "OIDC_TOKEN_USE_BASIC_AUTH": token_auth == "basic",
        "OIDC_TIMEOUT": int(_get(environ, "CONSOLE_OIDC_TIMEOUT_S", "10")),
        "OIDC_VERIFY_SSL": ca_file or True,
        "OIDC_CREATE_USER": True,
        "LOGIN_REDIRECT_URL_FAILURE": "/login/?oidc=failed",
    }
    values.update({name: value for name, value in endpoints.items() if value})
    return values
