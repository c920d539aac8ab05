from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertingConfig(AppConfig):
    name = "console.alerting"
    label = "alerting"
    verbose_name = _("Alerting")
    default_auto_field = "django.db.models.BigAutoField"
