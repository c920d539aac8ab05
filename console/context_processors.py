"""Template context shared by every page."""

from django.utils.translation import gettext_lazy as _

from console.core.permissions import ADMIN, OPERATOR, VIEWER, user_role

ROLE_LABELS = {VIEWER: _("viewer"), OPERATOR: _("operator"), ADMIN: _("admin")}


def console(request):
    role = user_role(getattr(request, "user", None))
    return {"console_role": role, "console_role_label": ROLE_LABELS.get(role, role)}
