"""Read-mostly admin views of alerting (the pages and the API are where operators work)."""

from django.contrib import admin

from console.alerting.models import Alert, AlertRule, DeliveryAttempt, Notification, NotificationChannel, Silence


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "builtin", "enabled", "series", "comparator", "threshold", "for_seconds",
                    "severity", "last_evaluated_at"]
    list_filter = ["kind", "builtin", "enabled", "severity"]
    search_fields = ["name", "series"]

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.builtin


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["rule_name", "state", "severity", "fingerprint", "active_since", "fired_at", "ended_at",
                    "acknowledged_by_name", "suppressed", "flapping"]
    list_filter = ["state", "severity", "suppressed", "flapping"]
    search_fields = ["rule_name", "fingerprint"]
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Silence)
class SilenceAdmin(admin.ModelAdmin):
    list_display = ["pk", "starts_at", "ends_at", "created_by_name", "comment"]


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    """The signing secret is never shown; set it through the channel page or the API."""

    list_display = ["name", "kind", "enabled", "disabled_reason", "last_delivery_at", "consecutive_failures"]
    list_filter = ["kind", "enabled"]
    exclude = ["encrypted_secret"]


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "duration_ms", "ok", "permanent", "status_code", "error", "response"]
    exclude = ["channel"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["pk", "channel", "kind", "status", "alert_count", "attempts", "created_at", "next_attempt_at"]
    list_filter = ["status", "kind", "channel"]
    readonly_fields = [f.name for f in Notification._meta.fields]
    inlines = [DeliveryAttemptInline]

    def has_add_permission(self, request):
        return False
