"""Filters of the alerting API."""

import django_filters
from django.db.models import Q

from console.alerting.choices import AlertState, ChannelKind, NotificationStatus, RuleKind, Severity, Suppression
from console.alerting.labels import LABEL_NAME_RE
from console.alerting.models import Alert, AlertRule, Notification, NotificationChannel, Silence


class AlertRuleFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=RuleKind.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = AlertRule
        fields = ["kind", "builtin", "enabled", "severity", "series", "name"]


class AlertFilter(django_filters.FilterSet):
    state = django_filters.MultipleChoiceFilter(choices=AlertState.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    rule = django_filters.NumberFilter(field_name="rule_id")
    rule_name = django_filters.CharFilter(lookup_expr="icontains")
    node = django_filters.CharFilter(field_name="labels__node", help_text="Node id (the alert's node label).")
    node_name = django_filters.CharFilter(field_name="labels__node_name")
    job = django_filters.CharFilter(field_name="labels__job", help_text="Job id (the alert's job label).")
    acknowledged = django_filters.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    suppressed = django_filters.ChoiceFilter(choices=Suppression.choices[1:], help_text="Why it is not notified.")
    silenced = django_filters.BooleanFilter(method="filter_silenced")
    flapping = django_filters.BooleanFilter()
    fingerprint = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="active_since", lookup_expr="gte")
    label = django_filters.CharFilter(method="filter_label", help_text="name=value on the alert's labels.")

    class Meta:
        model = Alert
        fields = ["state", "severity", "rule", "acknowledged", "suppressed", "flapping", "fingerprint"]

    def filter_silenced(self, queryset, name, value):
        q = Q(suppressed=Suppression.SILENCED)
        return queryset.filter(q) if value else queryset.exclude(q)

    def filter_label(self, queryset, name, value):
        key, _, label_value = value.partition("=")
        if not LABEL_NAME_RE.match(key):
            return queryset.none()
        return queryset.filter(**{f"labels__{key}": label_value})


class SilenceFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=[("active", "active"), ("pending", "pending"),
                                                 ("expired", "expired")], method="filter_state")

    class Meta:
        model = Silence
        fields = ["state"]

    def filter_state(self, queryset, name, value):
        from django.utils import timezone

        now = timezone.now()
        if value == "expired":
            return queryset.filter(ends_at__lte=now)
        if value == "pending":
            return queryset.filter(starts_at__gt=now, ends_at__gt=now)
        return queryset.filter(starts_at__lte=now, ends_at__gt=now)


class NotificationChannelFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=ChannelKind.choices)

    class Meta:
        model = NotificationChannel
        fields = ["kind", "enabled"]


class NotificationFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=NotificationStatus.choices)
    channel = django_filters.NumberFilter(field_name="channel_id")

    class Meta:
        model = Notification
        fields = ["status", "channel", "kind"]
