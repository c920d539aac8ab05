"""Generic webhook: the console's own JSON (documented in docs/alerting.md), optionally signed.

With a secret, the body carries ``X-Boom-Signature: sha256=<hex HMAC-SHA256 of the body>`` so that the
receiver can check it came from the console.
"""

from __future__ import annotations

import hashlib
import hmac

from console.alerting.notifiers.base import Notifier, SendResult, post_json, result


class WebhookNotifier(Notifier):
    kind = "webhook"

    def payload(self, message: dict) -> dict:
        alerts, truncated = self.limited(message)
        return {
            "version": "1",
            "source": "boom-console",
            "receiver": self.channel.name,
            "status": message["status"],
            "repeat": message.get("repeat", False),
            "group_key": message["group_key"],
            "group_labels": message["group_labels"],
            "common_labels": message["common_labels"],
            "common_annotations": message["common_annotations"],
            "external_url": message["external_url"],
            "alerts": alerts,
            "truncated_alerts": truncated,
        }

    def send(self, message: dict) -> SendResult:
        secret = self.channel.secret()

        def signer(body: bytes) -> dict[str, str]:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return {"X-Boom-Signature": f"sha256={digest}"}

        response = post_json(self.channel.url, self.payload(message), timeout=self.timeout,
                             signer=signer if secret else None)
        return result(response)
