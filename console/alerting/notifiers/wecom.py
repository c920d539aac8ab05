"""WeCom group robot (企业微信群机器人, ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``):
``{"msgtype": "markdown", "markdown": {"content"}}``, content at most 4096 bytes of UTF-8.

WeCom answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``; 45009 (rate limit) and -1 (busy) are
transient, other codes (93000 invalid webhook URL, 40008 bad message type...) permanent.
"""

from __future__ import annotations

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

MAX_CONTENT_BYTES = 4096
TRANSIENT_CODES = {-1, 45009}
FONT = {"critical": "warning", "warning": "warning", "info": "info"}


def clip_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit - 4].decode(errors="ignore") + " …"


class WeComNotifier(Notifier):
    kind = "wecom"

    def payload(self, message: dict) -> dict:
        alerts, truncated = self.limited(message)
        color = "info" if message["status"] != "firing" else "warning"
        heading = f'## <font color="{color}">{title(message)}</font>'
        content = "\n".join([heading] + markdown_lines(message, alerts, truncated))
        return {"msgtype": "markdown", "markdown": {"content": clip_utf8(content, MAX_CONTENT_BYTES)}}

    def send(self, message: dict) -> SendResult:
        response = post_json(self.channel.url, self.payload(message), timeout=self.timeout)
        body = response_json(response)
        code = body.get("errcode", 0)
        if code not in (0, None):
            raise NotifyError(f"WeCom refused the message: errcode {code}"[:500],
                              permanent=code not in TRANSIENT_CODES, status_code=response.status_code)
        return result(response)
