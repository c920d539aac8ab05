"""Web hardening shared by every app (issue 13): the websocket Origin
check, the Content-Security-Policy header, URL fields that refuse script schemes, spreadsheet-safe CSV
cells and API throttles whose rates are read from settings when a request comes (so they can change
in tests and deployments without re-importing DRF)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.translation import gettext_lazy as _
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

# --- websocket Origin ------------------------------------------------------------------------------


def allowed_origin_patterns() -> list[str]:
    """Origins a websocket may come from: any scheme and port of an allowed host, and the exact
    ``CSRF_TRUSTED_ORIGINS`` (with scheme, the names a TLS proxy serves the console under)."""
    return [*settings.ALLOWED_HOSTS, *settings.CSRF_TRUSTED_ORIGINS]


class OriginValidator:
    """Refuses a websocket whose ``Origin`` header names a site that is not the console (cross-site
    websocket hijacking with the browser's session cookie). The allowed origins are read from the settings
    on each connection. A connection with no ``Origin`` is let through: browsers always send one, so only
    a non-browser client (a script with a token) can omit it, and such a client holds no victim's cookie."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        from channels.security.websocket import OriginValidator as ChannelsOriginValidator
        from channels.security.websocket import WebsocketDenier

        origin = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                origin = value.decode("latin1")
        if origin is not None:
            patterns = allowed_origin_patterns()
            checker = ChannelsOriginValidator(None, patterns)
            parsed = urlparse(origin)
            if "*" not in patterns and (origin == "null" or not checker.validate_origin(parsed)):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


# --- Content-Security-Policy -----------------------------------------------------------------------


def _origin_of(url: str) -> str | None:
    parsed = urlparse(url or "")
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return f"{parsed.scheme}://{parsed.netloc}"
    return None


def content_security_policy() -> str:
    """The policy of every page: scripts and everything else from the console itself only (no inline
    script, no eval); inline ``style=`` attributes are allowed; the browser may also call the inference
    gateway (the playground). ``CONSOLE_CSP`` replaces it whole; an empty value sends none."""
    configured = getattr(settings, "CONSOLE_CSP", None)
    if configured is not None:
        return configured
    connect = ["'self'"]
    gateway = _origin_of(getattr(settings, "CONSOLE_GATEWAY_URL", ""))
    if gateway:
        connect.append(gateway)
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src " + " ".join(connect),
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


class ContentSecurityPolicyMiddleware:
    """Adds ``Content-Security-Policy`` to every response that has none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = content_security_policy()
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


# --- URLs stored in models -------------------------------------------------------------------------


@deconstructible
class WebURLValidator:
    """An absolute http(s) URL with a host, and no white space or control character: a ``javascript:`` or
    ``data:`` URL saved anywhere (the admin site included) would run in a viewer's browser as a link.
    Single-label host names (``http://alertmanager:9093``) are fine, as inside a cluster."""

    message = _("Enter an http:// or https:// URL.")
    code = "invalid_url"

    def __call__(self, value):
        if not value:
            return
        text = str(value)
        try:
            parsed = urlsplit(text)
            host = parsed.hostname
            parsed.port  # noqa: B018 - raises ValueError on a port out of range
        except ValueError:
            raise ValidationError(self.message, code=self.code, params={"value": value}) from None
        if (parsed.scheme.lower() not in ("http", "https") or not host
                or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text)):
            raise ValidationError(self.message, code=self.code, params={"value": value})

    def __eq__(self, other):
        return isinstance(other, WebURLValidator)


validate_web_url = WebURLValidator()


# --- CSV exports -----------------------------------------------------------------------------------

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula (OWASP CSV injection): text starting with
    ``= + - @``, a tab or a carriage return gets a leading apostrophe. Numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


# --- API throttles ---------------------------------------------------------------------------------


class AnonThrottle(AnonRateThrottle):
    """Requests of clients with no credentials, per address: ``CONSOLE_API_THROTTLE_ANON``."""

    def get_rate(self):
        return getattr(settings, "CONSOLE_API_THROTTLE_ANON", None) or None


class UserThrottle(UserRateThrottle):
    """Requests of each authenticated user (session or token): ``CONSOLE_API_THROTTLE_USER``."""

    def get_rate(self):
        return getattr(settings, "CONSOLE_API_THROTTLE_USER", None) or None


# --- login lockouts --------------------------------------------------------------------------------


def audit_lockout(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """django-axes' ``user_locked_out`` signal: the lockout goes to the audit log (the events page),
    with the user name tried and the address the attempts came from."""
    from console.core.audit import record

    name = (username or "")[:150]
    record("login.locked_out", request=request, actor=name or "anonymous", object_type="user",
           object_id=name[:64], detail={"username": name, "ip_address": ip_address or ""})
