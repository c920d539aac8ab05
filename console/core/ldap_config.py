"""``CONSOLE_LDAP_*`` environment variables to django-auth-ldap's ``AUTH_LDAP_*`` settings (read by
console/settings.py when ``CONSOLE_LDAP_URL`` is set; docs/security-auth.md). Imports no model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from console.core.env import EnvError

# The roles of console.core.permissions (spelt out: the settings import this module before DRF is set up).
ROLE_ENV = {"viewer": "CONSOLE_LDAP_VIEWER_GROUP", "operator": "CONSOLE_LDAP_OPERATOR_GROUP",
            "admin": "CONSOLE_LDAP_ADMIN_GROUP"}
GROUP_TYPES = ("groupOfNames", "groupOfUniqueNames", "posixGroup")
BACKEND = "console.core.directory.ConsoleLDAPBackend"


def _get(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = _get(environ, name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise EnvError(f"{name} must be a boolean (true/false), got {value!r}")


def ldap_settings(environ: Mapping[str, str]) -> dict:
    """django-auth-ldap's settings from ``CONSOLE_LDAP_*`` (an empty dict when ``CONSOLE_LDAP_URL`` is unset)."""
    url = _get(environ, "CONSOLE_LDAP_URL")
    if not url:
        return {}
    import ldap
    from django_auth_ldap.config import (
        GroupOfNamesType,
        GroupOfUniqueNamesType,
        LDAPGroupQuery,
        LDAPSearch,
        PosixGroupType,
    )

    user_base = _get(environ, "CONSOLE_LDAP_USER_SEARCH_BASE")
    group_base = _get(environ, "CONSOLE_LDAP_GROUP_SEARCH_BASE")
    if not user_base or not group_base:
        raise EnvError("CONSOLE_LDAP_URL needs CONSOLE_LDAP_USER_SEARCH_BASE and CONSOLE_LDAP_GROUP_SEARCH_BASE")
    password = _get(environ, "CONSOLE_LDAP_BIND_PASSWORD", "")
    password_file = _get(environ, "CONSOLE_LDAP_BIND_PASSWORD_FILE")
    if password_file:
        password = Path(password_file).read_text().strip()
    group_type = _get(environ, "CONSOLE_LDAP_GROUP_TYPE", "groupOfNames")
    if group_type not in GROUP_TYPES:
        raise EnvError(f"CONSOLE_LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}, got {group_type!r}")
    role_groups = {role: _get(environ, name) for role, name in ROLE_ENV.items()}
    if not any(role_groups.values()):
        raise EnvError("CONSOLE_LDAP_URL needs at least one of " + ", ".join(ROLE_ENV.values()))
    group_class = {"groupOfNames": GroupOfNamesType, "groupOfUniqueNames": GroupOfUniqueNamesType,
                   "posixGroup": PosixGroupType}[group_type]
    timeout = int(_get(environ, "CONSOLE_LDAP_TIMEOUT_S", "5"))
    required = None
    for dn in filter(None, role_groups.values()):
        required = LDAPGroupQuery(dn) if required is None else required | LDAPGroupQuery(dn)
    return {
        "AUTH_LDAP_SERVER_URI": url,
        "AUTH_LDAP_START_TLS": _bool(environ, "CONSOLE_LDAP_START_TLS", False),
        "AUTH_LDAP_BIND_DN": _get(environ, "CONSOLE_LDAP_BIND_DN", ""),
        "AUTH_LDAP_BIND_PASSWORD": password,
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(user_base, ldap.SCOPE_SUBTREE,
                                            _get(environ, "CONSOLE_LDAP_USER_FILTER", "(uid=%(user)s)")),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(group_base, ldap.SCOPE_SUBTREE,
                                             _get(environ, "CONSOLE_LDAP_GROUP_FILTER", f"(objectClass={group_type})")),
        "AUTH_LDAP_GROUP_TYPE": group_class(),
        "AUTH_LDAP_REQUIRE_GROUP": required,
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CACHE_TIMEOUT": 0,
        "AUTH_LDAP_CONNECTION_OPTIONS": {ldap.OPT_NETWORK_TIMEOUT: timeout, ldap.OPT_TIMEOUT: timeout,
                                         ldap.OPT_REFERRALS: 0},
        "CONSOLE_LDAP_ROLE_GROUPS": role_groups,
    }
