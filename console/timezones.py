"""The user's time zone: which one a page request runs in, and the user menu's choice.

Every page request is rendered in one zone (console.core.timefmt formats the timestamps, live.js the
chart axes), picked in this order:

1. the zone the user chose in the user menu (a :class:`console.models.UserPreference`, copied into the
   session at login and when chosen, so a request reads no table);
2. the browser's zone, which static/js/base.js puts in the ``boom_tz`` cookie (and reloads the first page
   once, so even the first page is right);
3. ``CONSOLE_TIME_ZONE`` (UTC by default).

The API is not affected: it answers in UTC (ISO 8601), whatever the zone.
"""

from __future__ import annotations

import zoneinfo
from urllib.parse import unquote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core.timefmt import valid_zone
from console.models import UserPreference

SESSION_KEY = "boom_tz"
COOKIE = "boom_tz"
#: Requests that keep the server's zone: the API answers in UTC.
UNZONED_PREFIXES = ("/api/", "/static/", "/metrics", "/healthz", "/readyz", "/ws/")


def zone_for(request) -> tuple[str | None, str]:
    """(zone name or None for the server's, where it came from: ``user``, ``browser`` or ``server``)."""
    session = getattr(request, "session", None)
    chosen = session.get(SESSION_KEY) if session is not None else None
    if chosen and valid_zone(chosen):
        return chosen, "user"
    browser = unquote(request.COOKIES.get(COOKIE) or "")  # base.js percent-encodes the "/"
    if browser and valid_zone(browser):
        return browser, "browser"
    return None, "server"


class TimezoneMiddleware:
    """Activates the request's zone (see the module docstring) for page requests."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(UNZONED_PREFIXES):
            request.time_zone_source = "server"
            return self.get_response(request)
        name, source = zone_for(request)
        request.time_zone_source = source
        if name:
            timezone.activate(zoneinfo.ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


@receiver(user_logged_in, dispatch_uid="console-timezones-login")
def _load_preference(sender, request, user, **kwargs):
    """Copy the user's stored choice into the new session."""
    if request is None or not hasattr(request, "session"):
        return
    chosen = UserPreference.objects.filter(user=user).values_list("time_zone", flat=True).first()
    if chosen:
        request.session[SESSION_KEY] = chosen
    else:
        request.session.pop(SESSION_KEY, None)


@login_required
@require_POST
def set_time_zone(request):
    """The user menu's choice: an IANA zone, or empty for the browser's. 400 for an unknown zone."""
    name = (request.POST.get("time_zone") or "").strip()
    if name and not valid_zone(name):
        return HttpResponseBadRequest(_("Unknown time zone %(zone)s: choose an IANA name such as Asia/Shanghai.")
                                      % {"zone": name[:64]}, content_type="text/plain; charset=utf-8")
    UserPreference.objects.update_or_create(user=request.user, defaults={"time_zone": name})
    if name:
        request.session[SESSION_KEY] = name
        messages.success(request, _("Times are now shown in %(zone)s.") % {"zone": name})
    else:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, _("Times now follow your browser's time zone."))
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    return redirect(target)
