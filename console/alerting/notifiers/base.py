"""What every notifier shares: the error that says whether retrying can help, an HTTP POST that
classifies failures, and the plain-text rendering the chat notifiers build on.

A notifier gets a channel and a message (console.alerting.dispatch.build_message: status, group
labels, common labels and annotations, and alerts with labels, annotations, times, links) and either
returns a :class:`SendResult` or raises :class:`NotifyError`. It never touches the database: it runs
in a delivery thread.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings

from console.core import outbound

RESPONSE_EXCERPT = 500  # of the console's own messages; receivers' bodies are never kept (docs/security.md)
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class NotifyError(Exception):
    """A failed delivery. ``permanent``: retrying the same request cannot succeed (a wrong URL, a
    rejected token); the channel is then disabled until someone fixes it."""

    def __init__(self, message: str, *, permanent: bool = False, status_code: int | None = None,
                 response: str = "", retry_after: float | None = None, answers: list | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status_code = status_code
        self.response = response
        self.retry_after = retry_after
        self.answers = answers or []  # per-receiver answers, for the operator's test only (never stored)


@dataclass
class SendResult:
    status_code: int | None = None
    response: str = ""
    error: str = ""  # delivered, but not everywhere (an alertmanager-api cluster member that failed)
    answers: list = field(default_factory=list)  # per-receiver answers, for the operator's test only


class Notifier:
    """Base class: one subclass per channel kind, registered in ``console.alerting.notifiers.NOTIFIERS``."""

    kind = ""

    def __init__(self, channel):
        self.channel = channel

    def is_noop(self, message: dict) -> bool:
        """True when this channel would send nothing for the message (then nothing is queued)."""
        return False

    def send(self, message: dict) -> SendResult:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- helpers

    @property
    def timeout(self) -> float:
        """The channel's own time-out (``timeout_s``), or CONSOLE_NOTIFY_TIMEOUT_S."""
        return float(getattr(self.channel, "timeout_s", None) or settings.CONSOLE_NOTIFY_TIMEOUT_S)

    def limited(self, message: dict) -> tuple[list[dict], int]:
        """The alerts to render and how many were left out (the channel's max_alerts)."""
        alerts = message.get("alerts", [])
        limit = getattr(self.channel, "max_alerts", 0) or 0
        if limit and len(alerts) > limit:
            return alerts[:limit], len(alerts) - limit
        return alerts, 0


def retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def post_json(url: str, body: Any, *, timeout: float, headers: dict[str, str] | None = None,
              signer=None) -> httpx.Response:
    """POST ``body`` as JSON. Raises NotifyError for anything but a 2xx answer: 408, 425, 429 and 5xx,
    time-outs and connection errors are transient; other 4xx and unusable URLs are permanent.
    ``signer(body_bytes) -> headers`` adds headers computed over the exact bytes sent."""
    data = json.dumps(body, ensure_ascii=False).encode()
    request_headers = {"Content-Type": "application/json", "User-Agent": "BooM-Console-Alerting/1"}
    request_headers.update(headers or {})
    if signer is not None:
        request_headers.update(signer(data))
    try:
        outbound.check_notify_url(url)
    except outbound.OutboundRefused as exc:
        raise NotifyError(f"refused by the outbound policy: {exc}", permanent=True) from None
    try:
        with outbound.http_client(timeout) as client:
            response = client.post(url, content=data, headers=request_headers)
    except httpx.TimeoutException as exc:
        raise NotifyError(f"no answer within {timeout:g} s ({type(exc).__name__})") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise NotifyError(f"unusable URL: {exc}", permanent=True) from None
    except httpx.HTTPError as exc:
        raise NotifyError(f"connection failed: {type(exc).__name__}: {exc}"[:500]) from None
    if 200 <= response.status_code < 300:
        return response
    transient = response.status_code in TRANSIENT_STATUS or response.status_code >= 500
    raise NotifyError(outbound.failure_message(response.status_code), permanent=not transient,
                      status_code=response.status_code,
                      retry_after=retry_after_s(response.headers.get("Retry-After")))


def result(response: httpx.Response) -> SendResult:
    """The status code only: the receiver's body is not kept (viewers read delivery attempts)."""
    return SendResult(response.status_code, "")


def response_json(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# ---------------------------------------------------------------------------------- plain rendering


def title(message: dict) -> str:
    """``[FIRING:2] Accelerator too hot (node-3)``, in the manner of Alertmanager's default title."""
    alerts = message.get("alerts", [])
    firing = sum(1 for a in alerts if a["status"] == "firing")
    status = f"FIRING:{firing}" if message.get("status") == "firing" else "RESOLVED"
    common = message.get("common_labels", {})
    name = common.get("alertname") or ", ".join(sorted({a["labels"].get("alertname", "") for a in alerts}))
    extra = [v for k, v in sorted(message.get("group_labels", {}).items()) if k != "alertname"]
    node_name = common.get("node_name")
    if node_name and node_name not in extra:
        extra = [node_name] + [v for v in extra if v != common.get("node")]
    suffix = f" ({', '.join(extra)})" if extra else ""
    repeat = " (repeat)" if message.get("repeat") else ""
    return f"[{status}] {name}{suffix}{repeat}"


def when(text: str | None) -> str:
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def alert_line(alert: dict) -> str:
    """One alert in one line of plain text."""
    summary = alert.get("annotations", {}).get("summary") or alert.get("rule", "")
    state = "RESOLVED" if alert["status"] == "resolved" else alert.get("severity", "").upper()
    since = f"since {when(alert.get('starts_at'))}" if alert["status"] == "firing" else \
        f"ended {when(alert.get('ends_at'))}"
    extras = []
    if alert.get("acknowledged_by"):
        extras.append(f"acknowledged by {alert['acknowledged_by']}")
    if alert.get("flapping"):
        extras.append(f"flapping: fired {alert.get('flap_count')} times within the hour")
    tail = f" ({'; '.join(extras)})" if extras else ""
    return f"[{state}] {summary} — {since}{tail}"


def plain_text(message: dict, alerts: list[dict], truncated: int) -> str:
    lines = [title(message), ""]
    for alert in alerts:
        lines.append("- " + alert_line(alert))
        description = alert.get("annotations", {}).get("description")
        if description:
            lines.append(f"  {description}")
        lines.append(f"  {alert.get('url', '')}")
    if truncated:
        lines.append(f"... and {truncated} more")
    return "\n".join(lines)


def severity_color(message: dict) -> str:
    """A colour for the message: red critical, amber warning, blue info, green resolved."""
    if message.get("status") != "firing":
        return "#1f9d55"
    severities = {a.get("severity") for a in message.get("alerts", []) if a["status"] == "firing"}
    if "critical" in severities:
        return "#d0342c"
    if "warning" in severities:
        return "#d99a00"
    return "#2b5fd9"


def markdown_lines(message: dict, alerts: list[dict], truncated: int, *, link: str = "[{text}]({url})") -> list[str]:
    """Markdown bullet lines (DingTalk, WeCom, Feishu's lark_md): one per alert with a link to it."""
    lines = []
    for alert in alerts:
        lines.append("- " + alert_line(alert) + " " + link.format(text="»", url=alert.get("url", "")))
        description = alert.get("annotations", {}).get("description")
        if description:
            lines.append(f"  > {description}")
    if truncated:
        lines.append(f"- … and {truncated} more")
    return lines
