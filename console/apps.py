from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = _("Console")

    def ready(self):
        # Imported when the app registry is ready: these modules register chart builders and series.
        from console.core import charts
        from console.telemetry import series

        charts.set_series_reader(series.query)

        # The sentences each app writes (reasons, causes, details), so that pages render them in the
        # reader's language (console.core.messages).
        from console.alerting import messages as alerting_messages
        from jobs import messages as jobs_messages
        from models_registry import messages as models_registry_messages
        from nodes import messages as nodes_messages

        for catalogue in (nodes_messages, models_registry_messages, jobs_messages, alerting_messages):
            catalogue.register()

        # Login lockouts (django-axes) are written to the audit log.
        from axes.signals import user_locked_out

        from console.core.security import audit_lockout

        user_locked_out.connect(audit_lockout, dispatch_uid="console-audit-lockout")

        # The user's chosen time zone is copied into the session at login.
        from console import timezones  # noqa: F401
