"""Notifiers: one module per channel kind, and the registry that maps a channel's ``kind`` to its class.

Adding a kind: a module with a :class:`~console.alerting.notifiers.base.Notifier` subclass, a line in
``NOTIFIERS``, and a choice in console.alerting.choices.ChannelKind.
"""

from console.alerting.notifiers.alertmanager import AlertmanagerNotifier
from console.alerting.notifiers.alertmanager_api import AlertmanagerAPINotifier
from console.alerting.notifiers.base import Notifier, NotifyError, SendResult
from console.alerting.notifiers.dingtalk import DingTalkNotifier
from console.alerting.notifiers.email import EmailNotifier
from console.alerting.notifiers.feishu import FeishuNotifier
from console.alerting.notifiers.slack import SlackNotifier
from console.alerting.notifiers.webhook import WebhookNotifier
from console.alerting.notifiers.wecom import WeComNotifier

NOTIFIERS: dict[str, type[Notifier]] = {
    "webhook": WebhookNotifier,
    "alertmanager": AlertmanagerNotifier,
    "email": EmailNotifier,
    "slack": SlackNotifier,
    "dingtalk": DingTalkNotifier,
    "wecom": WeComNotifier,
    "feishu": FeishuNotifier,
    "alertmanager-api": AlertmanagerAPINotifier,
}


def get_notifier(channel) -> Notifier:
    """The notifier for a channel; an unknown kind fails permanently rather than silently."""
    cls = NOTIFIERS.get(channel.kind)
    if cls is None:
        raise NotifyError(f"no notifier for channel kind {channel.kind!r}", permanent=True)
    return cls(channel)


__all__ = ["NOTIFIERS", "Notifier", "NotifyError", "SendResult", "get_notifier"]
