"""Email through Django's email backend (EMAIL_* settings, from CONSOLE_EMAIL_* variables).

SMTP answers decide: 5xx replies, refused recipients or sender and failed authentication are permanent;
4xx replies, time-outs and connection errors are transient.
"""

from __future__ import annotations

import smtplib
import ssl

from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from console.alerting.notifiers.base import Notifier, NotifyError, SendResult, plain_text, title


class EmailNotifier(Notifier):
    kind = "email"

    def is_noop(self, message: dict) -> bool:
        return not self.channel.addresses()

    def render(self, message: dict) -> tuple[str, str]:
        alerts, truncated = self.limited(message)
        body = plain_text(message, alerts, truncated)
        body += f"\n\n-- \nBooM Console {message.get('external_url', '')}/alerts/\n"
        return title(message), body

    def send(self, message: dict) -> SendResult:
        subject, body = self.render(message)
        recipients = self.channel.addresses()
        if not recipients:
            raise NotifyError("the channel has no email address", permanent=True)
        try:
            connection = get_connection(fail_silently=False, timeout=self.timeout)
            sent = EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, recipients,
                                headers={"X-BooM-Group-Key": message.get("group_key", "")},
                                connection=connection).send()
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotifyError(f"every recipient was refused: {exc.recipients}"[:500], permanent=True) from None
        except smtplib.SMTPSenderRefused as exc:
            raise NotifyError(f"sender {exc.sender} refused: {exc.smtp_code} {exc.smtp_error!r}"[:500],
                              permanent=True, status_code=exc.smtp_code) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise NotifyError(f"SMTP authentication failed: {exc.smtp_code}", permanent=True,
                              status_code=exc.smtp_code) from None
        except smtplib.SMTPResponseException as exc:
            raise NotifyError(f"SMTP server answered {exc.smtp_code} {exc.smtp_error!r}"[:500],
                              permanent=exc.smtp_code >= 500, status_code=exc.smtp_code) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(f"SMTP server does not support what the settings ask: {exc}", permanent=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise NotifyError(f"TLS certificate of the SMTP server rejected: {exc}", permanent=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP delivery failed: {type(exc).__name__}: {exc}"[:500]) from None
        if not sent:
            raise NotifyError("the email backend sent nothing")
        return SendResult(250, f"sent to {', '.join(recipients)}")
