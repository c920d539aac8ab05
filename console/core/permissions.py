"""Roles: Django groups ``viewer``, ``operator``, ``admin`` (a superuser is an admin).

``viewer`` reads; ``operator`` also runs the actions a viewset lists in ``operator_actions``
(probe a node, start/stop a job, acknowledge an alert...); ``admin`` does everything.
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
_RANK = {None: 0, VIEWER: 1, OPERATOR: 2, ADMIN: 3}


def user_role(user) -> str | None:
    """The strongest role the user holds, or None."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    cached = getattr(user, "_console_role", "unset")
    if cached != "unset":
        return cached
    names = set(user.groups.values_list("name", flat=True))
    role = next((r for r in (ADMIN, OPERATOR, VIEWER) if r in names), None)
    user._console_role = role
    return role


def has_role(user, role: str) -> bool:
    return _RANK[user_role(user)] >= _RANK[role]


class RolePermission(BasePermission):
    """Reads need ``viewer``; actions named in the view's ``operator_actions`` need ``operator``;
    every other write needs ``admin``."""

    message = "Your role does not allow this action."

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        if request.method in SAFE_METHODS:
            return has_role(request.user, VIEWER)
        if getattr(view, "action", None) in getattr(view, "operator_actions", ()):
            return has_role(request.user, OPERATOR)
        return has_role(request.user, ADMIN)
