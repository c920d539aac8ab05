"""Template context shared by every page."""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from console.core import timefmt
from console.core.permissions import ADMIN, OPERATOR, VIEWER, user_role

ROLE_LABELS = {VIEWER: _("viewer"), OPERATOR: _("operator"), ADMIN: _("admin")}


def console(request):
    role = user_role(getattr(request, "user", None))
    zone = timefmt.zone_name()
    return {"console_role": role, "console_role_label": ROLE_LABELS.get(role, role),
            # The time zone of this page (console.timezones), for <body data-tz> and the user menu.
            "console_time_zone": zone, "console_time_zone_label": timefmt.zone_label(),
            "console_time_zone_source": getattr(request, "time_zone_source", "server"),
            "console_time_zones": [z for z in timefmt.COMMON_ZONES if z != zone],
            # The login page's "Sign in with ..." button, when an OpenID provider is configured.
            "oidc_provider_name": getattr(settings, "CONSOLE_OIDC_PROVIDER_NAME", None)
            if getattr(settings, "OIDC_RP_CLIENT_ID", None) else None}
