"""Sign-in with the company directory (LDAP, through django-auth-ldap; docs/security-auth.md).

console.core.ldap_config turns the ``CONSOLE_LDAP_*`` variables into django-auth-ldap's settings. ``ConsoleLDAPBackend``
binds as the user found by the search, and maps the user's directory groups to the console's roles: the
directory decides the role at every login (a user removed from the admin group is an operator or viewer
at the next login). A user in none of the role groups is refused. A local account (one with a usable
password in the console's own database) is never signed in through the directory, so a directory entry
with a local account's name cannot take that account over.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib.auth import get_user_model

from console.core.permissions import ADMIN, OPERATOR, ROLES, VIEWER


def role_for_groups(group_dns, role_groups: Mapping[str, str | None]) -> str | None:
    """The strongest role whose directory group is among ``group_dns`` (DNs compared case-insensitively)."""
    held = {dn.lower() for dn in group_dns}
    for role in (ADMIN, OPERATOR, VIEWER):
        dn = role_groups.get(role)
        if dn and dn.lower() in held:
            return role
    return None


def set_role(user, role: str | None) -> None:
    """Make ``role`` the user's only role group (other, non-role groups are left alone)."""
    from django.contrib.auth.models import Group

    current = set(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
    wanted = {role} if role else set()
    if current != wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
        for name in wanted - current:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    user.__dict__.pop("_console_role", None)


try:
    from django_auth_ldap.backend import LDAPBackend
except ImportError:  # pragma: no cover - django-auth-ldap is a dependency; python-ldap needs libldap
    LDAPBackend = object


class ConsoleLDAPBackend(LDAPBackend):
    """django-auth-ldap with the console's role mapping and local accounts kept local."""

    def authenticate_ldap_user(self, ldap_user, password):
        local = get_user_model().objects.filter(username__iexact=ldap_user._username).first()
        if local is not None and local.has_usable_password():
            return None
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is not None:
            from django.conf import settings

            set_role(user, role_for_groups(ldap_user.group_dns, getattr(settings, "CONSOLE_LDAP_ROLE_GROUPS", {})))
        return user
