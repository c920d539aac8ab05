"""Template context shared by every page."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from console.core.permissions import ADMIN, OPERATOR, VIEWER, user_role

ROLE_LABELS = {VIEWER: _("viewer"), OPERATOR: _("operator"), ADMIN: _("admin")}


def console(request):
    role = user_role(getattr(request, "user", None))
    return {"console_role": role, "console_role_label": ROLE_LABELS.get(role, role),
            # The login page's "Sign in with ..." button, when an OpenID provider is configured.
            "oidc_provider_name": getattr(settings, "CONSOLE_OIDC_PROVIDER_NAME", None)
            if getattr(settings, "OIDC_RP_CLIENT_ID", None) else None}
