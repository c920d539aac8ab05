"""Slack incoming webhooks (``https://hooks.slack.com/services/...``): ``text`` plus one attachment with
the severity colour. Slack answers 200 ``ok``; 400 (invalid_payload, invalid_token), 403, 404
(no_service, channel_not_found) and 410 (channel_is_archived) are permanent, 429 and 5xx transient."""

from __future__ import annotations

from console.alerting.notifiers.base import (
    Notifier,
    SendResult,
    alert_line,
    post_json,
    result,
    severity_color,
    title,
)


def _escape(text: str) -> str:
    # Slack's mrkdwn gives &, < and > meaning; escape them as its documentation asks.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier(Notifier):
    kind = "slack"

    def payload(self, message: dict) -> dict:
        alerts, truncated = self.limited(message)
        lines = []
        for alert in alerts:
            lines.append(f"• {_escape(alert_line(alert))} <{alert['url']}|open>")
            description = alert.get("annotations", {}).get("description")
            if description:
                lines.append(f"    _{_escape(description)}_")
        if truncated:
            lines.append(f"… and {truncated} more")
        heading = _escape(title(message))
        return {
            "text": heading,
            "attachments": [{
                "color": severity_color(message),
                "fallback": heading,
                "title": heading,
                "title_link": f"{message['external_url']}/alerts/",
                "text": "\n".join(lines),
                "mrkdwn_in": ["text"],
                "footer": "BooM Console",
            }],
        }

    def send(self, message: dict) -> SendResult:
        return result(post_json(self.channel.url, self.payload(message), timeout=self.timeout))
