"""Alertmanager API v2: the console hands its alerts to an Alertmanager cluster operators already run, the
way Prometheus does (``POST <url>/api/v2/alerts``, a JSON list of postable alerts)::

    [{"labels": {...}, "annotations": {...}, "startsAt": "...", "endsAt": "...", "generatorURL": "..."}]

- **Labels**: the alert's labels (``alertname``, ``severity``, the node / accelerator / job / instance labels)
  plus ``console`` = ``CONSOLE_NAME``, so that Alertmanager routes can match this installation. Empty values are
  left out (in Prometheus an empty label is no label). **Annotations**: summary, description, runbook_url.
  ``generatorURL``: the alert's page under ``CONSOLE_EXTERNAL_URL``.
- **endsAt**: a firing alert's is *now + 4 re-send intervals* (``CONSOLE_ALERTMANAGER_RESEND_S``, 60 s), computed
  when the request is made, so that a retried message is as fresh as a new one; the dispatcher re-posts firing
  alerts every interval (``dispatch.resend_due``). A resolved alert's is its end time: Alertmanager resolves it.
- **Every URL gets every alert**, concurrently (a member of an HA pair that is down or slow does not hold up the
  other: each request has its own time-out, and none waits for another). The message is delivered when at least
  one member accepted it (as Prometheus, whose ``sendAll`` succeeds when one Alertmanager took the batch; the
  members gossip alerts among themselves, and the next re-send reaches a member that was down). Members that
  failed are named in the attempt's ``error`` (it stays ``ok``). When all fail, the attempt fails: permanent only
  when every member failed permanently (401, 403, 404, a refused URL), otherwise transient (retried).
- **Answers** of the Alertmanagers are not stored (delivery attempts are readable by viewers): the attempt keeps
  status codes; a short excerpt of each answer is returned to the operator who runs the channel's test only.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from console.alerting.notifiers.base import TRANSIENT_STATUS, Notifier, NotifyError, SendResult, retry_after_s
from console.core import outbound

API_PATH = "/api/v2/alerts"
ENDS_AFTER_INTERVALS = 4  # as Prometheus: endsAt = now + 4 x max(resend delay, evaluation interval)
EXCERPT = 200  # characters of an Alertmanager's answer shown to the operator who tests the channel


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def endpoint(base_url: str) -> str:
    """``http://am:9093`` (or ``.../`` or a path prefix such as ``/alertmanager``) -> ``.../api/v2/alerts``."""
    return base_url.rstrip("/") + API_PATH


def member_name(url: str) -> str:
    """How a member is named in attempts (visible to viewers): host and port only, as masked URLs show."""
    return urlsplit(url).netloc or url


def _strings(mapping: dict, *, skip_empty: bool = True) -> dict[str, str]:
    out = {}
    for key, value in mapping.items():
        text = value if isinstance(value, str) else ("" if value is None else str(value))
        if text or not skip_empty:
            out[str(key)] = text
    return out


def ends_at_firing(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now + timedelta(seconds=settings.CONSOLE_ALERTMANAGER_RESEND_S * ENDS_AFTER_INTERVALS)


def postable_alerts(message: dict, *, now: datetime | None = None, console: str | None = None) -> list[dict]:
    """The message's alerts as Alertmanager's ``postableAlerts``."""
    console = console if console is not None else settings.CONSOLE_NAME
    firing_end = rfc3339(ends_at_firing(now))
    out = []
    for alert in message.get("alerts", []):
        labels = _strings(alert.get("labels", {}))
        if console:
            labels["console"] = console
        annotations = {k: v for k, v in _strings(alert.get("annotations", {})).items()
                       if k in ("summary", "description", "runbook_url")}
        resolved = alert.get("status") == "resolved"
        item = {"labels": labels, "annotations": annotations,
                "endsAt": (alert.get("ends_at") or rfc3339(now or datetime.now(UTC))) if resolved else firing_end,
                "generatorURL": alert.get("url") or ""}
        if alert.get("starts_at"):
            item["startsAt"] = alert["starts_at"]
        out.append(item)
    return out


@dataclass
class MemberAnswer:
    """One Alertmanager's answer. ``excerpt`` (the start of its body) is for the operator's test only."""

    member: str
    ok: bool
    status_code: int | None = None
    error: str = ""
    permanent: bool = False
    retry_after: float | None = None
    excerpt: str = ""

    def as_dict(self) -> dict:
        return {"member": self.member, "ok": self.ok, "status_code": self.status_code, "error": self.error,
                "excerpt": self.excerpt}

    def line(self) -> str:
        return f"{self.member}: accepted (HTTP {self.status_code})" if self.ok else f"{self.member}: {self.error}"


class AlertmanagerAPINotifier(Notifier):
    kind = "alertmanager-api"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "BooM-Console-Alerting/1"}
        secret = self.channel.secret()
        if self.channel.auth_username:
            pair = f"{self.channel.auth_username}:{secret}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif secret:
            headers["Authorization"] = f"Bearer {secret}"
        return headers

    def payload(self, message: dict) -> list[dict]:
        # All alerts, whatever max_alerts says: one left out would resolve in Alertmanager when its endsAt passes.
        return postable_alerts(message)

    def post_one(self, base_url: str, body: bytes, headers: dict[str, str]) -> MemberAnswer:
        member = member_name(base_url)
        url = endpoint(base_url)
        try:
            outbound.check_notify_url(url)
        except outbound.OutboundRefused as exc:
            return MemberAnswer(member, False, error=f"refused by the outbound policy: {exc}", permanent=True)
        try:
            with outbound.http_client(self.timeout) as client:
                response = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return MemberAnswer(member, False, error=f"no answer within {self.timeout:g} s ({type(exc).__name__})")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return MemberAnswer(member, False, error=f"unusable URL: {exc}", permanent=True)
        except httpx.HTTPError as exc:
            return MemberAnswer(member, False, error=f"connection failed: {type(exc).__name__}: {exc}"[:300])
        excerpt = response.text[:EXCERPT]
        if 200 <= response.status_code < 300:
            return MemberAnswer(member, True, response.status_code, excerpt=excerpt)
        transient = response.status_code in TRANSIENT_STATUS or response.status_code >= 500
        return MemberAnswer(member, False, response.status_code, outbound.failure_message(response.status_code),
                            permanent=not transient, retry_after=retry_after_s(response.headers.get("Retry-After")),
                            excerpt=excerpt)

    def post_all(self, alerts: list[dict]) -> list[MemberAnswer]:
        """The same body to every member at once; each answer (or failure) on its own."""
        urls = list(self.channel.urls or [])
        if not urls:
            raise NotifyError("the channel has no Alertmanager URL", permanent=True)
        body = json.dumps(alerts, ensure_ascii=False).encode()
        headers = self.headers()
        if len(urls) == 1:
            return [self.post_one(urls[0], body, headers)]
        with ThreadPoolExecutor(max_workers=len(urls), thread_name_prefix="alertmanager") as pool:
            return list(pool.map(lambda url: self.post_one(url, body, headers), urls))

    def send(self, message: dict) -> SendResult:
        answers = self.post_all(self.payload(message))
        return self.conclude(answers)

    @staticmethod
    def conclude(answers: list[MemberAnswer]) -> SendResult:
        accepted = [a for a in answers if a.ok]
        failed = [a for a in answers if not a.ok]
        summary = "; ".join(a.line() for a in answers)[:1000]
        if accepted:
            error = f"{len(failed)} of {len(answers)} Alertmanagers failed: " + "; ".join(
                a.line() for a in failed) if failed else ""
            return SendResult(accepted[0].status_code, summary, error=error[:2000],
                              answers=[a.as_dict() for a in answers])
        permanent = all(a.permanent for a in failed)
        codes = [a.status_code for a in failed if a.status_code is not None]
        retry_after = max((a.retry_after for a in failed if a.retry_after is not None), default=None)
        raise NotifyError(f"no Alertmanager accepted the alerts: {summary}"[:2000], permanent=permanent,
                          status_code=codes[-1] if codes else None, retry_after=retry_after,
                          answers=[a.as_dict() for a in answers])
