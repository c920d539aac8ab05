"""Answers while a service the console stands on is down: 503 naming the part, never a 500.

PostgreSQL restarting, Redis restarting, the broker gone: a request that needs one of them cannot be
served, and the honest answer is "unavailable, because of <part>; try again", which clients and load
balancers retry, not "internal error". Two ways in, because Django reaches an error from a view and an
error from a middleware by different roads:

* :class:`ServiceUnavailableMiddleware` turns an outage error raised by a view (the API included: DRF
  hands exceptions it does not know back to Django) into the 503;
* :func:`server_error` is the ``handler500`` (console.urls): an outage error raised by a middleware
  (the session or the user, read from the database before any view runs) reaches it, and it answers the
  same 503; any other error stays the plain 500 page.

``/readyz`` (console.health) names the same parts. When the service answers again nothing needs to be
done: the next request opens a new connection (CONN_HEALTH_CHECKS drops a dead one first).
"""

from __future__ import annotations

import logging
import sys

from django.http import HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views import defaults

log = logging.getLogger(__name__)

DATABASE, REDIS, BROKER = "database", "redis", "broker"
RETRY_AFTER_S = 5


def outage_part(exc: BaseException | None) -> str | None:
    """The part whose outage ``exc`` (or an exception it was raised from) reports, or None."""
    from django.db import InterfaceError, OperationalError

    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OperationalError | InterfaceError):
            return DATABASE
        module = type(exc).__module__ or ""
        if module.startswith("redis.") and _is_redis_outage(exc):
            return REDIS
        if module.startswith(("kombu.", "amqp.")) and type(exc).__name__ == "OperationalError":
            return BROKER
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _is_redis_outage(exc: BaseException) -> bool:
    from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

    return isinstance(exc, ConnectionError | TimeoutError | BusyLoadingError)


def wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/readyz", "/healthz", "/metrics")) or (
        "application/json" in request.headers.get("Accept", ""))


def unavailable(request, part: str) -> HttpResponse:
    """The 503 answer for ``part``: JSON for the API, a short page (no database, no session) otherwise."""
    detail = _("The console cannot reach its %(part)s; try again in a few seconds.") % {"part": part}
    if wants_json(request):
        response = JsonResponse({"detail": detail, "part": part}, status=503)
    else:
        # Rendered without the request: context processors would read the session and the user.
        response = HttpResponse(render_to_string("503_unavailable.html", {"detail": detail, "part": part}),
                                status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


class ServiceUnavailableMiddleware:
    """Outage errors raised by views become 503 (see the module docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        part = outage_part(exception)
        if part is None:
            return None
        log.warning("%s %s: %s unavailable (%s: %s)", request.method, request.path, part,
                    type(exception).__name__, exception)
        return unavailable(request, part)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    """``handler500``: 503 naming the part when the error being handled is an outage, else Django's 500."""
    part = outage_part(sys.exc_info()[1])
    if part is not None:
        return unavailable(request, part)
    return defaults.server_error(request, template_name)
