"""Alertmanager-compatible webhook: the version 4 payload that Alertmanager's ``webhook_config`` sends,
so that receivers written for Alertmanager (prometheus-msteams, alertmanager-webhook-* bridges, custom
ones) work unchanged. Field names, order and formats follow real captures
(tests/fixtures/alertmanager/, provenance in tests/fixtures/ALERTMANAGER-SOURCES.md):

``{receiver, status, alerts: [{status, labels, annotations, startsAt, endsAt, generatorURL, fingerprint}],
groupLabels, commonLabels, commonAnnotations, externalURL, version: "4", groupKey, truncatedAlerts}``

Annotations and label values are strings, as Alertmanager's are; a firing alert's endsAt is
``0001-01-01T00:00:00Z``.
"""

from __future__ import annotations

from console.alerting.notifiers.base import Notifier, SendResult, post_json, result

ZERO_TIME = "0001-01-01T00:00:00Z"


def _strings(mapping: dict) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else str(v) for k, v in mapping.items()}


class AlertmanagerNotifier(Notifier):
    kind = "alertmanager"

    def payload(self, message: dict) -> dict:
        alerts, truncated = self.limited(message)
        return {
            "receiver": self.channel.name,
            "status": message["status"],
            "alerts": [{
                "status": alert["status"],
                "labels": _strings(alert["labels"]),
                "annotations": _strings(alert["annotations"]),
                "startsAt": alert["starts_at"],
                "endsAt": alert["ends_at"] if alert["status"] == "resolved" and alert["ends_at"] else ZERO_TIME,
                "generatorURL": alert["url"],
                "fingerprint": alert["fingerprint"],
            } for alert in alerts],
            "groupLabels": _strings(message["group_labels"]),
            "commonLabels": _strings(message["common_labels"]),
            "commonAnnotations": _strings(message["common_annotations"]),
            "externalURL": message["external_url"],
            "version": "4",
            "groupKey": message["group_key"],
            "truncatedAlerts": truncated,
        }

    def send(self, message: dict) -> SendResult:
        return result(post_json(self.channel.url, self.payload(message), timeout=self.timeout))
