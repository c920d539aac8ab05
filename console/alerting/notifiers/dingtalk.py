"""DingTalk custom robot (钉钉自定义机器人, ``https://oapi.dingtalk.com/robot/send?access_token=...``):
``{"msgtype": "markdown", "markdown": {"title", "text"}}``.

With the robot's signing secret (加签, ``SEC...``): ``timestamp`` (ms) and ``sign`` =
urlencode(base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>"))) are added to the URL. DingTalk answers
HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; a non-zero errcode is a failure: 130101 (sending too
fast) and -1 (busy) are transient, others (310000 keyword/signature/IP check, 300001 bad token...)
permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote_plus

from console.alerting.notifiers.base import (
    Notifier,
    NotifyError,
    SendResult,
    markdown_lines,
    post_json,
    response_json,
    result,
    title,
)

TRANSIENT_CODES = {-1, 130101}


def signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    timestamp_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={sign}"


class DingTalkNotifier(Notifier):
    kind = "dingtalk"

    def payload(self, message: dict) -> dict:
        alerts, truncated = self.limited(message)
        heading = title(message)
        text = "\n".join([f"#### {heading}", ""] + markdown_lines(message, alerts, truncated))
        return {"msgtype": "markdown", "markdown": {"title": heading, "text": text}}

    def send(self, message: dict) -> SendResult:
        secret = self.channel.secret()
        url = signed_url(self.channel.url, secret) if secret else self.channel.url
        response = post_json(url, self.payload(message), timeout=self.timeout)
        body = response_json(response)
        code = body.get("errcode", 0)
        if code not in (0, None):
            raise NotifyError(f"DingTalk refused the message: errcode {code}"[:500],
                              permanent=code not in TRANSIENT_CODES, status_code=response.status_code)
        return result(response)
