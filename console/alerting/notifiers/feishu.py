"""Feishu / Lark custom bot (飞书自定义机器人, ``https://open.feishu.cn/open-apis/bot/v2/hook/...``): an
interactive card ``{"msg_type": "interactive", "card": {"header", "elements"}}`` coloured by severity.

With the bot's signature secret (签名校验): ``timestamp`` (seconds) and ``sign`` =
base64(HMAC-SHA256(key="<timestamp>\\n<secret>", message="")) go in the body. Feishu answers HTTP 200
with ``{"code": 0, "msg": "success"}`` (older deployments: ``{"StatusCode": 0}``); 11232 (rate limited)
is transient, other codes (19021 signature, 19022 IP, 19024 keyword, 9499 bad request) permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

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

TRANSIENT_CODES = {11232}


def sign(secret: str, timestamp: int) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def template_color(message: dict) -> str:
    if message["status"] != "firing":
        return "green"
    severities = {a.get("severity") for a in message.get("alerts", []) if a["status"] == "firing"}
    return "red" if "critical" in severities else "orange" if "warning" in severities else "blue"


class FeishuNotifier(Notifier):
    kind = "feishu"

    def payload(self, message: dict, timestamp: int | None = None) -> dict:
        alerts, truncated = self.limited(message)
        content = "\n".join(markdown_lines(message, alerts, truncated))
        body = {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": title(message)},
                           "template": template_color(message)},
                "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": content}}],
            },
        }
        secret = self.channel.secret()
        if secret:
            timestamp = timestamp if timestamp is not None else int(time.time())
            body = {"timestamp": str(timestamp), "sign": sign(secret, timestamp), **body}
        return body

    def send(self, message: dict) -> SendResult:
        response = post_json(self.channel.url, self.payload(message), timeout=self.timeout)
        body = response_json(response)
        code = body.get("code", body.get("StatusCode", 0))
        if code not in (0, None):
            raise NotifyError(f"Feishu refused the message: code {code}"[:500],
                              permanent=code not in TRANSIENT_CODES, status_code=response.status_code)
        return result(response)
