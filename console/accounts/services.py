"""User and API-token workflows: the only code that creates users, changes their role or active flag,
and creates or revokes API tokens, each recorded in the audit log (never a password or a key).

Roles are the groups of console.core.permissions (viewer < operator < admin; a superuser is an admin).
The console keeps at least one active admin: a change that would leave none is a ``Conflict``.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext

from console.core import audit
from console.core.confirm import with_reason
from console.core.directory import set_role
from console.core.errors import Conflict
from console.core.models import ApiToken
from console.core.permissions import ADMIN, user_role

#: Length of the passwords the console generates for new users (shown once to the admin).
PASSWORD_BYTES = 12


def _active_admins():
    User = get_user_model()
    return User.objects.filter(is_active=True).filter(Q(is_superuser=True) | Q(groups__name=ADMIN)).distinct()


def _refuse_losing_last_admin(user) -> None:
    if user_role(user) == ADMIN and not _active_admins().exclude(pk=user.pk).exists():
        raise Conflict(gettext("%(name)s is the last active admin: make another user an admin first")
                       % {"name": user.get_username()})


def create_user(*, username: str, email: str = "", role: str | None, password: str = "", request=None):
    """A new active user with ``role``; returns ``(user, password)``. Without ``password`` one is generated
    (the caller shows it once to the admin, who hands it over; the user changes it in Django's password page)."""
    User = get_user_model()
    generated = password or secrets.token_urlsafe(PASSWORD_BYTES)
    with transaction.atomic():
        user = User.objects.create_user(username, email=email or "", password=generated)
        set_role(user, role)
        audit.record("create", user, request=request, detail={"role": role or "", "email": bool(email)})
    return user, (generated if not password else "")


def change_role(user, role: str | None, *, request=None, reason: str = ""):
    """Make ``role`` the user's only role (None: no role, no access). Conflict when it would leave the
    console without an active admin. A superuser stays an admin whatever its groups say."""
    old = user_role(user)
    if old == role:
        return user
    if role != ADMIN:
        _refuse_losing_last_admin(user)
    with transaction.atomic():
        set_role(user, role)
        audit.record("role", user, request=request, detail=with_reason({"from": old or "", "to": role or ""}, reason))
    return user


def set_active(user, active: bool, *, request=None, reason: str = ""):
    """Deactivate a user (they can no longer sign in, their sessions end and their API tokens stop
    working) or reactivate them. Conflict for one's own account and for the last active admin."""
    if user.is_active == active:
        return user
    if not active:
        actor = getattr(request, "user", None)
        if actor is not None and actor.pk == user.pk:
            raise Conflict(gettext("you cannot deactivate your own account"))
        _refuse_losing_last_admin(user)
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        audit.record("activate" if active else "deactivate", user, request=request, detail=with_reason(None, reason))
    return user


def create_token(user, name: str, *, request=None) -> ApiToken:
    """A new API token of ``user``; the returned object carries the key in ``.key``, to be shown once.
    The audit event names the token and its prefix, never the key."""
    with transaction.atomic():
        token = ApiToken.objects.create(user=user, name=name)
        audit.record("create", token, request=request, object_type="apitoken",
                     detail={"user": user.get_username(), "name": name, "prefix": token.prefix})
    return token


def revoke_token(token: ApiToken, *, request=None, reason: str = "") -> None:
    """Revoke (delete) a token: the next request with its key gets 401."""
    pk, owner = token.pk, token.user.get_username()
    with transaction.atomic():
        token.delete()
        audit.record("revoke", None, request=request, object_type="apitoken", object_id=pk,
                     detail=with_reason({"user": owner, "name": token.name, "prefix": token.prefix}, reason))
