"""Alerting API views: thin; the work is in console.alerting.services (and the evaluator/dispatcher)."""

from django.db.models import Count, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.alerting import services
from console.alerting.api.filtersets import (
    AlertFilter,
    AlertRuleFilter,
    NotificationChannelFilter,
    NotificationFilter,
    SilenceFilter,
)
from console.alerting.api.serializers import (
    AcknowledgeSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    AlertSummarySerializer,
    AlertTransitionSerializer,
    DeliveryAttemptSerializer,
    NotificationChannelSerializer,
    NotificationDetailSerializer,
    NotificationSerializer,
    SilenceSerializer,
    TestResultSerializer,
)
from console.alerting.choices import NotificationStatus
from console.alerting.models import Alert, AlertRule, Notification, NotificationChannel, Silence
from console.alerting.summary import alert_summary
from console.core import audit
from console.core.api import AuditedModelViewSet

ERRORS = {400: OpenApiResponse(description="Invalid input, with field messages"),
          401: OpenApiResponse(description="No credentials"), 403: OpenApiResponse(description="Role too weak"),
          404: OpenApiResponse(description="Not found"), 409: OpenApiResponse(description="State conflict")}
READ_ERRORS = {k: v for k, v in ERRORS.items() if k in (401, 403, 404)}


class AlertRuleViewSet(AuditedModelViewSet):
    """Alert rules (admins manage them). Built-in rules (``builtin: true``) can be disabled and tuned, not
    deleted (409)."""

    queryset = AlertRule.objects.annotate(firing=Count("alerts", filter=Q(alerts__state="firing"))).order_by("name")
    serializer_class = AlertRuleSerializer
    filterset_class = AlertRuleFilter
    ordering_fields = ["name", "severity", "kind", "created_at", "last_evaluated_at"]

    @extend_schema(responses={201: AlertRuleSerializer, **ERRORS})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(responses={200: AlertRuleSerializer, **ERRORS})
    def update(self, request, *args, **kwargs):
        return super().update(request, *args, **kwargs)

    @extend_schema(responses={200: AlertRuleSerializer, **ERRORS})
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_create(self, serializer):
        super().perform_create(serializer)
        services.rule_saved(serializer.instance, was_enabled=None, request=self.request)

    def perform_update(self, serializer):
        was_enabled = serializer.instance.enabled
        super().perform_update(serializer)
        services.rule_saved(serializer.instance, was_enabled=was_enabled, request=self.request)

    def perform_destroy(self, instance):
        services.delete_rule(instance, request=self.request)


class AlertViewSet(viewsets.ReadOnlyModelViewSet):
    """Alerts, newest first. Operators acknowledge them. Filters: ``?state=&severity=&rule=&node=&job=
    &acknowledged=&suppressed=&flapping=&label=name=value``."""

    queryset = Alert.objects.select_related("group").order_by("-active_since", "-id")
    serializer_class = AlertSerializer
    filterset_class = AlertFilter
    ordering_fields = ["active_since", "fired_at", "ended_at", "severity_rank", "state", "id"]
    operator_actions = ("ack", "unack")

    @extend_schema(request=AcknowledgeSerializer, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def ack(self, request, pk=None):
        """Acknowledge: the alert stays, repeats stop until it resolves. 409 when already resolved."""
        alert = self.get_object()
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        alert = services.acknowledge(alert, user=request.user, comment=body.validated_data.get("comment", ""),
                                     request=request)
        return Response(self.get_serializer(alert).data)

    @extend_schema(request=None, responses={200: AlertSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def unack(self, request, pk=None):
        """Withdraw the acknowledgement: repeats resume."""
        alert = services.unacknowledge(self.get_object(), request=request)
        return Response(self.get_serializer(alert).data)

    @extend_schema(responses={200: AlertTransitionSerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The alert's state transitions, newest first."""
        alert = self.get_object()
        page = self.paginate_queryset(alert.transitions.all())
        return self.get_paginated_response(AlertTransitionSerializer(page, many=True).data)

    @extend_schema(responses={200: AlertSummarySerializer, **READ_ERRORS})
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def summary(self, request):
        """Firing alerts (not silenced, inhibited or paused) by severity, the worst, and pending ones: the
        header of every page. The ``alerts`` live-stream topic carries the same object as ``state.summary``."""
        return Response(alert_summary())


class SilenceViewSet(AuditedModelViewSet):
    """Silences: operators create, change and expire them; admins delete them."""

    queryset = Silence.objects.order_by("-starts_at", "-id")
    serializer_class = SilenceSerializer
    filterset_class = SilenceFilter
    ordering_fields = ["starts_at", "ends_at", "created_at"]
    operator_actions = ("create", "update", "partial_update", "expire")

    @extend_schema(responses={201: SilenceSerializer, **ERRORS})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(responses={200: SilenceSerializer, **ERRORS})
    def update(self, request, *args, **kwargs):
        return super().update(request, *args, **kwargs)

    @extend_schema(responses={200: SilenceSerializer, **ERRORS})
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    def perform_create(self, serializer):
        user = self.request.user
        serializer.save(created_by=user, created_by_name=user.get_username())
        audit.record("create", serializer.instance, request=self.request,
                     detail={"matchers": serializer.instance.matchers})
        services.refresh_soon()

    def perform_update(self, serializer):
        super().perform_update(serializer)
        services.refresh_soon()

    @extend_schema(request=None, responses={200: SilenceSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def expire(self, request, pk=None):
        """End the silence now. 409 when it has ended already."""
        silence = services.expire_silence(self.get_object(), request=request)
        return Response(self.get_serializer(silence).data)


class NotificationChannelViewSet(AuditedModelViewSet):
    """Notification channels (admins manage them; operators may test them). A channel the console disabled
    after a permanent error shows ``auto_disabled: true`` and ``disabled_reason``; PATCH ``enabled: true``
    (or POST ``enable/``) after fixing it sends what it held."""

    queryset = NotificationChannel.objects.annotate(pending_notifications=Count(
        "notifications", filter=Q(notifications__status=NotificationStatus.PENDING))).order_by("name")
    serializer_class = NotificationChannelSerializer
    filterset_class = NotificationChannelFilter
    ordering_fields = ["name", "kind", "created_at", "last_delivery_at"]
    operator_actions = ("test",)
    secret_fields = ("secret", "password", "bearer_token")

    @extend_schema(responses={201: NotificationChannelSerializer, **ERRORS})
    def create(self, request, *args, **kwargs):
        return super().create(request, *args, **kwargs)

    @extend_schema(responses={200: NotificationChannelSerializer, **ERRORS})
    def update(self, request, *args, **kwargs):
        return super().update(request, *args, **kwargs)

    @extend_schema(responses={200: NotificationChannelSerializer, **ERRORS})
    def partial_update(self, request, *args, **kwargs):
        return super().partial_update(request, *args, **kwargs)

    def perform_update(self, serializer):
        was_enabled = serializer.instance.enabled
        super().perform_update(serializer)
        if serializer.instance.enabled and not was_enabled:
            services.enable_channel(serializer.instance, request=self.request)

    @extend_schema(request=None, responses={200: TestResultSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test notification now and answer with the recorded attempt (``delivered`` false and the
        error when the receiver failed). Not retried; never disables the channel. ``answers``
        (alertmanager-api): each Alertmanager's status and the start of its answer, not stored."""
        attempt = services.send_test(self.get_object(), request=request)
        return Response({"delivered": attempt.ok, "attempt": DeliveryAttemptSerializer(attempt).data,
                         "answers": attempt.answers})

    @extend_schema(request=None, responses={200: NotificationChannelSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        """Enable the channel (after fixing it); notifications it held go out."""
        channel = services.enable_channel(self.get_object(), request=request)
        return Response(self.get_serializer(self.get_queryset().get(pk=channel.pk)).data)

    @extend_schema(request=None, responses={200: NotificationChannelSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        """Switch the channel off: nothing is queued for it until it is enabled."""
        channel = services.disable_channel(self.get_object(), request=request)
        return Response(self.get_serializer(self.get_queryset().get(pk=channel.pk)).data)

    @extend_schema(responses={200: DeliveryAttemptSerializer(many=True), **READ_ERRORS})
    @action(detail=True, methods=["get"])
    def attempts(self, request, pk=None):
        """Delivery attempts to this channel, newest first."""
        channel = self.get_object()
        page = self.paginate_queryset(channel.attempts.all())
        return self.get_paginated_response(DeliveryAttemptSerializer(page, many=True).data)


class NotificationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The notification outbox: what was queued for which channel, its status and attempts. Read-only."""

    queryset = Notification.objects.select_related("group").order_by("-created_at", "-id")
    serializer_class = NotificationSerializer
    filterset_class = NotificationFilter
    ordering_fields = ["created_at", "next_attempt_at", "status"]

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("attempt_log")
        return queryset

    def get_serializer_class(self):
        return NotificationDetailSerializer if self.action == "retrieve" else NotificationSerializer
