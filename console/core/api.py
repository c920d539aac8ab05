"""API plumbing shared by every app: the exception handler, the audited viewset mixin,
and the events endpoint."""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.db.models import ProtectedError
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from console.core import audit, event_text, messages
from console.core.confirm import REASON_MAX
from console.core.errors import Conflict
from console.core.models import Event

# The error answers every API route documents (OpenAPI), besides its own 2xx.
ERRORS = {400: OpenApiResponse(description="Invalid input, with field messages"),
          401: OpenApiResponse(description="No credentials"), 403: OpenApiResponse(description="Role too weak"),
          404: OpenApiResponse(description="Not found"), 409: OpenApiResponse(description="State conflict")}


def exception_handler(exc, context):
    """DRF's handler, plus: Django validation errors are 400 with field messages, protected
    deletes, integrity errors and every service ``Conflict`` (console.core.errors) are 409 with
    ``detail`` — never a 500."""
    if isinstance(exc, Conflict):
        return Response({"detail": exc.detail}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DjangoValidationError):
        data = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(data, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProtectedError):
        names = sorted({str(o) for o in list(exc.protected_objects)[:5]})
        return Response({"detail": f"In use by: {', '.join(names)}"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IntegrityError):
        return Response({"detail": "Conflicts with an existing object."}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)


class ActionReasonSerializer(serializers.Serializer):
    """The optional reason of a destructive action (stop, reset a host key), kept in its audit event."""

    reason = serializers.CharField(required=False, allow_blank=True, max_length=REASON_MAX,
                                   help_text="Why; kept in the audit event's detail.")


#: The ``?reason=`` of a ``DELETE`` (a body is not expected there), documented on each destroy.
REASON_PARAMETER = OpenApiParameter("reason", str, description="Why; kept in the audit event's detail.")


def body_reason(request) -> str:
    """The validated ``reason`` of the request body ("" without one); 400 when it is too long."""
    body = ActionReasonSerializer(data=request.data if isinstance(request.data, dict) else {})
    body.is_valid(raise_exception=True)
    return body.validated_data.get("reason", "").strip()


def query_reason(request) -> str:
    """The validated ``?reason=`` of a DELETE ("" without one); 400 when it is too long."""
    body = ActionReasonSerializer(data={"reason": request.query_params.get("reason", "")})
    body.is_valid(raise_exception=True)
    return body.validated_data.get("reason", "").strip()


class AuditedModelViewSet(viewsets.ModelViewSet):
    """A ModelViewSet that writes an audit event for create, update and destroy."""

    def perform_create(self, serializer):
        instance = serializer.save()
        audit.record("create", instance, request=self.request, detail=self.audit_detail(serializer))

    def perform_update(self, serializer):
        instance = serializer.save()
        audit.record("update", instance, request=self.request, detail=self.audit_detail(serializer))

    def perform_destroy(self, instance):
        pk, text = instance.pk, str(instance)
        instance.delete()
        audit.record("delete", None, request=self.request, object_type=instance._meta.model_name,
                     object_id=pk, detail={"name": text})

    secret_fields: tuple[str, ...] = ()

    def audit_detail(self, serializer) -> dict:
        """The changed fields, without secrets, as JSON-safe strings."""
        data = getattr(serializer, "initial_data", {}) or {}
        return {"fields": sorted(k for k in data.keys() if k not in self.secret_fields)}


class SystemText(serializers.CharField):
    """A read-only ``<field>_display``: a stored system sentence (a status detail, an exit cause) rendered in
    the request's language (console.core.messages); the field it reads keeps the English text."""

    def __init__(self, source: str, **kwargs):
        kwargs.setdefault("help_text", f"``{source}`` in the request's language (Accept-Language or the "
                                       "language cookie).")
        super().__init__(source=source, read_only=True, **kwargs)

    def to_representation(self, value) -> str:
        return messages.render(value)


class EventFilter(django_filters.FilterSet):
    object_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="time", lookup_expr="gte")

    class Meta:
        model = Event
        fields = ["object_type", "object_id", "verb", "actor"]


class EventSerializer(serializers.ModelSerializer):
    message = serializers.SerializerMethodField(
        help_text="The event as one line in the request's language (Accept-Language or the language cookie): "
                  "verb, object, and the change with its reason or the detail. ``detail`` keeps the stored "
                  "values; a transition's ``detail.reason_message`` holds the code and parameters of its reason.")

    class Meta:
        model = Event
        fields = ["id", "time", "actor", "verb", "object_type", "object_id", "object_repr", "detail",
                  "source_address", "message"]

    def get_message(self, event) -> str:
        return event_text.sentence(event)


class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit and event log, newest first. Read-only."""

    queryset = Event.objects.all()
    serializer_class = EventSerializer
    filterset_class = EventFilter
    ordering_fields = ["time", "id"]
