"""Serializers of the alerting API (shared/API.md: alert-rules/, alerts/, silences/, notification-channels/).

Bad input is a 400 with ``{field: [messages]}``: unknown series, invalid templates, matchers that are
not valid regular expressions or name labels the alerts do not have, silences that end before they
start, channel URLs that are not http(s).
"""

from __future__ import annotations

import math

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import EmailValidator, URLValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from console.alerting import templating
from console.alerting.choices import (
    BUILTIN_KINDS,
    SERIES_KINDS,
    ChannelKind,
    RuleKind,
)
from console.alerting.conditions import labels_for, unit_for
from console.alerting.labels import LabelError, normalize_group_by, parse_matchers
from console.alerting.models import (
    Alert,
    AlertRule,
    AlertTransition,
    DeliveryAttempt,
    Notification,
    NotificationChannel,
    Silence,
)
from console.core import outbound
from console.core.permissions import ADMIN, has_role
from console.telemetry import series as telemetry

MATCHERS_HELP = ('A list of {"name", "op", "value"} objects (op one of =, !=, =~, !~; regular expressions '
                 'match the whole value), or of strings such as node_name=~"gpu-.*".')


@extend_schema_field({"type": "array", "items": {"type": "object", "properties": {
    "name": {"type": "string"}, "op": {"type": "string", "enum": ["=", "!=", "=~", "!~"]},
    "value": {"type": "string"}}}})
class MatchersField(serializers.JSONField):
    """Matchers in, normalized ``[{name, op, value}]`` out (validated in the serializer's ``validate``,
    where the rule's labels are known)."""


def _matchers(raw, allowed=None) -> list[dict]:
    try:
        return [m.as_dict() for m in parse_matchers(raw, allowed_labels=allowed)]
    except LabelError as exc:
        raise serializers.ValidationError(exc.messages) from None


class AlertRuleSerializer(serializers.ModelSerializer):
    matchers = MatchersField(required=False, help_text=MATCHERS_HELP)
    group_by = serializers.JSONField(required=False, help_text='Label names; default ["alertname", "node"] '
                                                               '("rule" means alertname; ["..."]: every label).')
    builtin = serializers.BooleanField(read_only=True)
    firing = serializers.IntegerField(read_only=True, help_text="Firing alerts of the rule now.")
    unit = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = ["id", "name", "kind", "builtin", "enabled", "series", "unit", "comparator", "threshold",
                  "for_seconds", "window_seconds", "severity", "matchers", "summary_template",
                  "description_template", "runbook_url", "group_by", "group_wait_s", "group_interval_s",
                  "repeat_interval_s", "firing", "last_evaluated_at", "last_error", "created_at", "updated_at"]
        read_only_fields = ["last_evaluated_at", "last_error", "created_at", "updated_at"]
        extra_kwargs = {
            "for_seconds": {"max_value": 7 * 86400},
            "window_seconds": {"min_value": 60, "max_value": 86400},
            "group_wait_s": {"max_value": 3600},
            "group_interval_s": {"min_value": 1, "max_value": 86400},
            "repeat_interval_s": {"min_value": 60, "max_value": 7 * 86400},
        }

    def get_unit(self, obj) -> str:
        return unit_for(obj.kind, obj.series)

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("Must not be blank.")
        return value.strip()

    def validate_threshold(self, value):
        if value is None or not math.isfinite(value):
            raise serializers.ValidationError("Must be a finite number.")
        return value

    def validate_runbook_url(self, value):
        if value:
            try:
                URLValidator(schemes=["http", "https"])(value)
            except DjangoValidationError:
                raise serializers.ValidationError("Must be an http:// or https:// URL.") from None
        return value

    def validate(self, attrs):
        instance = self.instance
        errors: dict[str, list[str]] = {}
        kind = attrs.get("kind", instance.kind if instance else RuleKind.THRESHOLD)
        series = attrs.get("series", instance.series if instance else "")
        if instance is not None and instance.builtin:
            for field in ("kind", "series"):
                if field in attrs and attrs[field] != getattr(instance, field):
                    errors[field] = ["A built-in rule's kind and series cannot change."]
        elif kind in BUILTIN_KINDS:
            errors["kind"] = [f"Only {', '.join(SERIES_KINDS)} rules can be created; the built-in ones exist "
                              "already (builtin: true)."]
        if kind in SERIES_KINDS:
            if not series:
                errors["series"] = ["This field is required for threshold and relative rules."]
            elif series not in telemetry.SERIES:
                errors["series"] = [f"Unknown series {series!r}; GET /api/v1/metrics/series/ lists them."]
        labels = labels_for(kind, series)
        if "matchers" in attrs:
            try:
                attrs["matchers"] = _matchers(attrs["matchers"], labels)
            except serializers.ValidationError as exc:
                errors["matchers"] = exc.detail
        elif instance is not None and ("series" in attrs or "kind" in attrs):
            try:
                _matchers(instance.matchers, labels)
            except serializers.ValidationError as exc:
                errors["matchers"] = exc.detail
        for field in ("summary_template", "description_template"):
            template = attrs.get(field, getattr(instance, field, "") if instance else "")
            if template:
                try:
                    templating.validate(template, labels)
                except templating.TemplateError as exc:
                    errors[field] = [str(exc)]
        if "group_by" in attrs:
            try:
                attrs["group_by"] = normalize_group_by(attrs["group_by"]) or ["alertname", "node"]
            except LabelError as exc:
                errors["group_by"] = exc.messages
        if kind == RuleKind.RELATIVE and attrs.get("window_seconds", getattr(instance, "window_seconds", None)) \
                is not None and attrs.get("window_seconds", getattr(instance, "window_seconds", None)) < 300:
            errors["window_seconds"] = ["The baseline window of a relative rule is at least 300 s."]
        if errors:
            raise serializers.ValidationError(errors)
        if kind == RuleKind.RELATIVE and not attrs.get("window_seconds") and not getattr(instance, "window_seconds",
                                                                                         None):
            attrs["window_seconds"] = 3600
        return attrs


class AlertSerializer(serializers.ModelSerializer):
    summary = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    started_at = serializers.DateTimeField(source="active_since", read_only=True,
                                           help_text="When the condition was first seen true.")
    acknowledged_by = serializers.CharField(source="acknowledged_by_name", read_only=True, allow_null=True,
                                            help_text="Who acknowledged it (username), or null.")
    group_key = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = ["id", "rule", "rule_name", "state", "severity", "labels", "annotations", "summary", "description",
                  "value", "fingerprint", "started_at", "fire_at", "fired_at", "ended_at", "acknowledged_by",
                  "acknowledged_at", "ack_comment", "suppressed", "silenced_by", "inhibited_by", "flapping",
                  "flap_count", "group_key", "last_notified_state"]
        read_only_fields = fields

    def get_group_key(self, obj) -> str | None:
        return obj.group.key if obj.group_id else None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["acknowledged_by"] = instance.acknowledged_by_name or None
        return data


class AcknowledgeSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class AlertTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertTransition
        fields = ["id", "time", "from_state", "to_state", "value", "reason"]


class AlertSummarySerializer(serializers.Serializer):
    firing = serializers.IntegerField(help_text="Firing alerts that are not silenced, inhibited or paused.")
    acknowledged = serializers.IntegerField()
    pending = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    worst_severity = serializers.CharField(allow_null=True)
    by_severity = serializers.DictField(child=serializers.IntegerField())


class SilenceSerializer(serializers.ModelSerializer):
    matchers = MatchersField(help_text=MATCHERS_HELP)
    starts_at = serializers.DateTimeField(required=False)
    created_by = serializers.CharField(source="created_by_name", read_only=True)
    state = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = ["id", "matchers", "starts_at", "ends_at", "comment", "created_by", "state", "created_at",
                  "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_state(self, obj) -> str:
        return obj.state()

    def validate_comment(self, value):
        if not value.strip():
            raise serializers.ValidationError("Say why (who is working on it, a ticket).")
        return value

    def validate_matchers(self, value):
        matchers = parse_matchers_or_400(value)
        if not matchers:
            raise serializers.ValidationError("At least one matcher is required.")
        if all(m.matches({}) for m in matchers):
            raise serializers.ValidationError("These matchers match every alert; name at least one label value.")
        return [m.as_dict() for m in matchers]

    def validate(self, attrs):
        instance = self.instance
        now = timezone.now()
        starts = attrs.get("starts_at", instance.starts_at if instance else now)
        ends = attrs.get("ends_at", instance.ends_at if instance else None)
        if ends is None:
            raise serializers.ValidationError({"ends_at": ["This field is required."]})
        if ends <= starts:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        if ends <= now and (instance is None or "ends_at" in attrs):
            raise serializers.ValidationError({"ends_at": ["Must be in the future."]})
        attrs["starts_at"] = starts
        return attrs


def parse_matchers_or_400(value):
    try:
        return parse_matchers(value)
    except LabelError as exc:
        raise serializers.ValidationError(exc.messages) from None


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/…``: incoming-webhook URLs embed their credential."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.scheme and parts.netloc else ""


MAX_URLS = 10
AM_API_SUFFIX = "/api/v2/alerts"


def clean_alertmanager_urls(value) -> tuple[list[str], list[str]]:
    """The base URLs of an Alertmanager cluster (``http://am-1:9093``; a trailing ``/api/v2/alerts`` is taken
    off) and the problems found. Credentials go in auth_username/password or bearer_token, not in the URL."""
    from urllib.parse import urlsplit

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return [], ["A list of Alertmanager base URLs, such as [\"http://am-1:9093\", \"http://am-2:9093\"]."]
    cleaned, problems = [], []
    for raw in value:
        url = raw.strip().rstrip("/")
        if url.endswith(AM_API_SUFFIX):
            url = url[: -len(AM_API_SUFFIX)]
        try:
            URLValidator(schemes=["http", "https"])(url)
        except DjangoValidationError:
            problems.append(f"Must be an http:// or https:// URL: {raw[:200]}")
            continue
        parts = urlsplit(url)
        if parts.username or parts.password:
            problems.append("Put credentials in auth_username and password (or bearer_token), not in the URL.")
            continue
        if parts.query or parts.fragment:
            problems.append(f"A base URL has no query or fragment: {raw[:200]}")
            continue
        try:
            outbound.check_notify_url(url)
        except outbound.OutboundRefused as exc:
            problems.append(str(exc))
            continue
        if url not in cleaned:
            cleaned.append(url)
    if not cleaned and not problems:
        problems.append("At least one Alertmanager URL is required.")
    if len(cleaned) > MAX_URLS:
        problems.append(f"At most {MAX_URLS} URLs.")
    return cleaned, problems


class NotificationChannelSerializer(serializers.ModelSerializer):
    url = serializers.CharField(required=False, allow_blank=True, max_length=2000,
                                help_text="http(s) URL of the receiver (all kinds but email). Shown in full to "
                                          "admins only: incoming-webhook URLs embed their credential.")
    address = serializers.CharField(required=False, allow_blank=True, max_length=1000,
                                    help_text="Email kind: one address or several, comma-separated.")
    secret = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500,
                                   help_text="DingTalk / Feishu signing secret, or the HMAC key of a webhook's "
                                             "X-Boom-Signature. Write-only.")
    matchers = MatchersField(required=False, help_text="Only alerts matching these. " + MATCHERS_HELP)
    urls = serializers.JSONField(required=False, help_text=(
        "alertmanager-api: the base URLs of the Alertmanager cluster's members (http://am-1:9093); each gets every "
        "alert. Shown in full to admins only."))
    auth_username = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text=(
        "alertmanager-api: basic-auth user (with password)."))
    password = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=500,
                                     help_text="alertmanager-api: basic-auth password. Write-only, encrypted.")
    bearer_token = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=4000,
                                         help_text="alertmanager-api: bearer token (instead of basic auth). "
                                                   "Write-only, encrypted.")
    timeout_s = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=120, help_text=(
        "Time limit of one request in seconds (empty: CONSOLE_NOTIFY_TIMEOUT_S)."))
    auth = serializers.SerializerMethodField(help_text="alertmanager-api: basic, bearer or none.")
    has_secret = serializers.SerializerMethodField()
    auto_disabled = serializers.BooleanField(read_only=True)
    pending_notifications = serializers.IntegerField(read_only=True, default=0)

    class Meta:
        model = NotificationChannel
        fields = ["id", "name", "kind", "url", "urls", "address", "secret", "auth_username", "password",
                  "bearer_token", "auth", "has_secret", "timeout_s", "enabled", "auto_disabled",
                  "disabled_reason", "disabled_at", "send_resolved", "min_severity", "matchers", "max_alerts",
                  "pending_notifications", "last_delivery_at", "last_error", "last_error_at",
                  "consecutive_failures", "created_at", "updated_at"]
        read_only_fields = ["disabled_reason", "disabled_at", "last_delivery_at", "last_error", "last_error_at",
                            "consecutive_failures", "created_at", "updated_at"]

    def get_has_secret(self, obj) -> bool:
        return bool(obj.encrypted_secret)

    def get_auth(self, obj) -> str:
        if obj.kind != ChannelKind.ALERTMANAGER_API:
            return "none"
        return "basic" if obj.auth_username else "bearer" if obj.encrypted_secret else "none"

    def validate_matchers(self, value):
        return [m.as_dict() for m in parse_matchers_or_400(value)]

    def validate(self, attrs):
        instance = self.instance
        kind = attrs.get("kind", instance.kind if instance else None)
        errors: dict[str, list[str]] = {}
        if instance is not None and "kind" in attrs and attrs["kind"] != instance.kind:
            errors["kind"] = ["The kind of a channel cannot change; create another channel."]
        url = attrs.get("url", instance.url if instance else "").strip()
        address = attrs.get("address", instance.address if instance else "").strip()
        if kind and kind != ChannelKind.ALERTMANAGER_API:
            for field in ("urls", "auth_username", "password", "bearer_token"):
                if attrs.get(field):
                    errors[field] = ["Only alertmanager-api channels have this field."]
        if kind == ChannelKind.ALERTMANAGER_API:
            self._validate_alertmanager_api(attrs, instance, url, address, errors)
        elif kind == ChannelKind.EMAIL:
            if not address:
                errors["address"] = ["This field is required for email channels."]
            else:
                bad = []
                for part in [a.strip() for a in address.replace(";", ",").split(",") if a.strip()]:
                    try:
                        EmailValidator()(part)
                    except DjangoValidationError:
                        bad.append(part)
                if bad:
                    errors["address"] = [f"Not an email address: {', '.join(bad)[:200]}"]
            if url:
                errors["url"] = ["Email channels have an address, not a URL."]
        elif kind:
            if not url:
                errors["url"] = ["This field is required."]
            else:
                try:
                    URLValidator(schemes=["http", "https"])(url)
                    outbound.check_notify_url(url)
                except DjangoValidationError:
                    errors["url"] = ["Must be an http:// or https:// URL."]
                except outbound.OutboundRefused as exc:
                    errors["url"] = [str(exc)]
            if address:
                errors["address"] = ["Only email channels have an address."]
        if errors:
            raise serializers.ValidationError(errors)
        if "url" in attrs:
            attrs["url"] = url
        if "address" in attrs:
            attrs["address"] = address
        return attrs

    def _validate_alertmanager_api(self, attrs, instance, url, address, errors) -> None:
        if "urls" in attrs or instance is None:
            cleaned, problems = clean_alertmanager_urls(attrs.get("urls", []))
            if problems:
                errors["urls"] = problems
            attrs["urls"] = cleaned
        if url:
            errors["url"] = ["alertmanager-api channels have urls (a list), not url."]
        if address:
            errors["address"] = ["Only email channels have an address."]
        if attrs.get("secret"):
            errors["secret"] = ["alertmanager-api channels take password (with auth_username) or bearer_token."]
        password, token = attrs.get("password", ""), attrs.get("bearer_token", "")
        username = attrs.get("auth_username", instance.auth_username if instance else "").strip()
        if password and token:
            errors["bearer_token"] = ["Either basic auth (auth_username and password) or a bearer token, not both."]
        elif password and not username:
            errors["auth_username"] = ["A password needs a user name."]
        elif token and attrs.get("auth_username"):
            errors["auth_username"] = ["A bearer token goes without a user name."]
        elif "auth_username" in attrs and username and not password and not (instance and instance.auth_username
                                                                                and instance.encrypted_secret):
            errors["password"] = ["Basic auth needs a password."]
        if "auth_username" in attrs:
            attrs["auth_username"] = username

    def _apply_credentials(self, channel: NotificationChannel, data: dict) -> None:
        """Secrets: the signing secret of the other kinds, or alertmanager-api's password or bearer token (one
        encrypted field; with a user name it is a password). A user name taken away without a token given
        takes the password with it: it must never turn into a bearer token."""
        password, token = data.pop("password", None), data.pop("bearer_token", None)
        secret = data.pop("secret", None)
        if token is not None and token != "":
            channel.set_secret(token)
            data["auth_username"] = ""
        elif password is not None:
            channel.set_secret(password)
        elif token == "" and not (data.get("auth_username", channel.auth_username)):
            channel.set_secret("")
        elif "auth_username" in data and not data["auth_username"] and channel.auth_username:
            channel.set_secret("")
        if secret is not None:
            channel.set_secret(secret)

    def create(self, validated_data):
        channel = NotificationChannel()
        self._apply_credentials(channel, validated_data)
        for key, value in validated_data.items():
            setattr(channel, key, value)
        channel.save()
        return channel

    def update(self, instance, validated_data):
        self._apply_credentials(instance, validated_data)
        enabling = validated_data.get("enabled") is True and not instance.enabled
        for key, value in validated_data.items():
            setattr(instance, key, value)
        if enabling:
            instance.disabled_reason, instance.disabled_at, instance.consecutive_failures = "", None, 0
        elif validated_data.get("enabled") is False:
            # An operator's "off" (not the console's after an error): nothing is queued for it any more.
            instance.disabled_reason = ""
            instance.disabled_at = instance.disabled_at or timezone.now()
        instance.save()
        return instance

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")

        if not (request is not None and has_role(request.user, ADMIN)):
            if data.get("url"):
                data["url"] = mask_url(data["url"])
            data["urls"] = [mask_url(u) for u in data.get("urls") or []]
        return data


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["id", "notification", "channel", "number", "started_at", "duration_ms", "ok", "permanent",
                  "status_code", "error", "response"]


class NotificationSerializer(serializers.ModelSerializer):
    group_key = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "channel", "kind", "status", "group_key", "alert_count", "attempts", "created_at",
                  "next_attempt_at", "delivered_at", "expires_at", "last_error"]

    def get_group_key(self, obj) -> str | None:
        return obj.group.key if obj.group_id else None


class NotificationDetailSerializer(NotificationSerializer):
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta(NotificationSerializer.Meta):
        fields = NotificationSerializer.Meta.fields + ["payload", "attempt_log"]


class ReceiverAnswerSerializer(serializers.Serializer):
    member = serializers.CharField(help_text="host:port of the Alertmanager")
    ok = serializers.BooleanField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    excerpt = serializers.CharField(help_text="The start of its answer (operators only; not stored).")


class TestResultSerializer(serializers.Serializer):
    delivered = serializers.BooleanField()
    attempt = DeliveryAttemptSerializer()
    answers = ReceiverAnswerSerializer(many=True, help_text="alertmanager-api: one per Alertmanager; else empty.")

