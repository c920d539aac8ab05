"""Times on pages: one time zone per user, in every timestamp and chart axis.

The server stores and computes in UTC. Each page request runs in the user's zone (console.timezones
activates it: the zone chosen in the user menu, else the browser's, else ``CONSOLE_TIME_ZONE``), and every
timestamp of a template goes through the ``when`` / ``ago`` filters here (builtins: no ``{% load %}``):

    {{ event.time|when }}        <time datetime="2026-12-05T12:18:03Z" title="2026-12-05 20:18:03 CST
                                 (Asia/Shanghai)">2026-12-05 20:18:03</time>
    {{ run.created_at|when:"minutes" }}   the same without seconds
    {{ node.last_seen|ago }}     "5 minutes ago", with the same datetime and title
    {{ alert.active_since|since }}  "5 minutes" (a duration up to now), likewise

The ``datetime`` attribute is UTC (ISO 8601), the text and title are in the active zone. static/js/live.js
draws the chart axes in the same zone (``<body data-tz>``, and ``zone_label`` in the live config).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext

register = template.Library()

FORMATS = {"seconds": "%Y-%m-%d %H:%M:%S", "minutes": "%Y-%m-%d %H:%M", "date": "%Y-%m-%d", "time": "%H:%M:%S"}

#: The zones the user menu offers besides the browser's (any IANA zone is accepted).
COMMON_ZONES = ("UTC", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Singapore", "Asia/Tokyo",
                "Asia/Kolkata", "Europe/London", "Europe/Berlin", "Europe/Moscow", "America/New_York",
                "America/Chicago", "America/Los_Angeles", "Australia/Sydney")


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    """Every IANA zone name this machine knows."""
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def valid_zone(name) -> bool:
    """True for an IANA zone name (``Asia/Shanghai``, ``UTC``)."""
    return isinstance(name, str) and name in known_zones()


def zone_name(zone=None) -> str:
    """The IANA name of ``zone`` (default: the active one)."""
    zone = zone or timezone.get_current_timezone()
    return getattr(zone, "key", None) or str(zone)


def offset_label(moment: dt.datetime | None = None) -> str:
    """``UTC+08:00`` for the active zone at ``moment`` (default: now)."""
    offset = timezone.localtime(moment or timezone.now()).utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_label() -> str:
    """``Asia/Shanghai (UTC+08:00)``: how a chart axis and the user menu name the active zone."""
    return f"{zone_name()} ({offset_label()})"


def _aware(value) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return value


def iso_utc(value: dt.datetime) -> str:
    """``2026-12-05T12:18:03Z``."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def full_title(value: dt.datetime) -> str:
    """``2026-12-05 20:18:03 CST (Asia/Shanghai)``: the title of every timestamp."""
    local = timezone.localtime(value)
    return f"{local.strftime(FORMATS['seconds'])} {local.strftime('%Z') or offset_label(value)} ({zone_name()})"


def wall_time(value) -> str:
    """``2026-12-05 20:18:03``: a moment (a datetime, or an ISO 8601 string with its offset) as the active
    zone's wall time, for a chart that draws date strings as they are (plotly.js)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return timezone.localtime(_aware(value)).strftime(FORMATS["seconds"])


@register.filter(is_safe=True)
def when(value, precision: str = "seconds"):
    """A ``<time>`` element: the moment in the user's zone, its UTC ISO form and a titled full form."""
    value = _aware(value)
    if value is None:
        return ""
    text = timezone.localtime(value).strftime(FORMATS.get(precision, FORMATS["seconds"]))
    return format_html('<time datetime="{}" title="{}">{}</time>', iso_utc(value), full_title(value), text)


@register.filter(is_safe=True)
def ago(value):
    """``<time ...>5 minutes ago</time>`` with the same ``datetime`` and title as :func:`when`."""
    value = _aware(value)
    if value is None:
        return ""
    text = gettext("%(time)s ago") % {"time": timesince(value)}
    return format_html('<time datetime="{}" title="{}">{}</time>', iso_utc(value), full_title(value), text)


@register.filter(is_safe=True)
def since(value):
    """``<time ...>5 minutes</time>`` (how long since then), titled like :func:`when`."""
    value = _aware(value)
    if value is None:
        return ""
    return format_html('<time datetime="{}" title="{}">{}</time>', iso_utc(value), full_title(value), timesince(value))


@register.simple_tag
def time_zone_label() -> str:
    """The active zone, as the user menu and chart axes name it."""
    return zone_label()
