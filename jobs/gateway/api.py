"""REST views of the gateway's resources: ``api-keys/``, ``routes/``, ``usage/``. Thin: the work is in
jobs.gateway.services."""

import csv
import io

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from console.core.api import ERRORS, AuditedModelViewSet
from jobs.gateway import services
from jobs.gateway.models import ApiKey, Route
from jobs.gateway.serializers import ApiKeyCreatedSerializer, ApiKeySerializer, RouteSerializer, UsageSerializer


class ApiKeyViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    """Gateway API keys. Operators and admins create keys, which belong to them; an admin sees and
    revokes every key, anyone else only their own. The key is in the 201 of the create, once."""

    queryset = ApiKey.objects.none()
    serializer_class = ApiKeySerializer
    operator_actions = ("create", "revoke")
    filterset_fields = ["revoked"]
    ordering_fields = ["created_at", "name", "last_used_at"]

    def get_queryset(self):
        return services.visible_keys(self.request.user).order_by("-created_at", "-id")

    @extend_schema(request=ApiKeySerializer, responses={201: ApiKeyCreatedSerializer, **ERRORS})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = serializer.save()  # services.create_key: digest and prefix stored, audited
        response = Response(ApiKeyCreatedSerializer(key).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=None, responses={200: ApiKeySerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        """Revoke the key (idempotent); every gateway process refuses it within about a second."""
        key = services.revoke_key(self.get_object(), request=request)
        return Response(self.get_serializer(key).data)


class RouteViewSet(AuditedModelViewSet):
    """Gateway routes: a model name spread over jobs by weight, with a fallback job. Viewers read;
    operators and admins write."""

    queryset = Route.objects.select_related("fallback").prefetch_related("targets__job").order_by("name")
    serializer_class = RouteSerializer
    operator_actions = ("create", "update", "partial_update", "destroy")
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["name"]

    def perform_create(self, serializer):
        serializer.save()  # services.save_route audits

    def perform_update(self, serializer):
        serializer.save()

    def perform_destroy(self, instance):
        services.delete_route(instance, request=self.request)


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes | str):
            return data
        out = io.StringIO()
        csv.writer(out).writerows([[k, v] for k, v in (data or {}).items()] if isinstance(data, dict) else [])
        return out.getvalue()


USAGE_PARAMETERS = [
    OpenApiParameter("key", OpenApiTypes.INT, description="API key id: its owner and admins only."),
    OpenApiParameter("job", OpenApiTypes.INT, description="Job id."),
    OpenApiParameter("route", OpenApiTypes.INT, description="Route id."),
    OpenApiParameter("model", OpenApiTypes.STR, description="The model name clients sent."),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="ISO 8601; default end - 1 h."),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="ISO 8601; default now."),
    OpenApiParameter("step", OpenApiTypes.INT, description="Bucket width in seconds, a multiple of 60 (default 60)."),
]


class UsageViewSet(viewsets.GenericViewSet):
    """What the gateway served, summed over its processes. Sums over all keys (by job, route or
    model) are visible to every reader; ``key=`` only to the key's owner and admins."""

    pagination_class = None
    filter_backends: list = []
    serializer_class = UsageSerializer
    renderer_classes = [renderers.JSONRenderer, renderers.BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self):
        return None

    def _query(self, request):
        try:
            return services.parse_usage_query(request.query_params, request.user)
        except services.UsageError as exc:
            raise ValidationError(exc.errors) from None
        except PermissionError as exc:
            raise PermissionDenied(str(exc)) from None

    @extend_schema(parameters=USAGE_PARAMETERS, responses={200: UsageSerializer, **ERRORS})
    def list(self, request):
        """Points (every bucket, zeros included), totals and errors by kind. ``?format=csv``: the CSV
        export (as ``usage/export/``)."""
        if getattr(request.accepted_renderer, "format", None) == "csv":
            return self.export(request)
        return Response(services.usage_report(self._query(request)))

    @extend_schema(parameters=USAGE_PARAMETERS,
                   responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description=(
                       "t,key,model,requests,errors,prompt_tokens,completion_tokens,latency_ms_avg,ttft_ms_avg; "
                       "one row per bucket, key and model")), **ERRORS})
    @action(detail=False, methods=["get"], renderer_classes=[CSVRenderer, renderers.JSONRenderer])
    def export(self, request):
        """CSV: one row per bucket, key (prefix) and model; cells that a spreadsheet would run as a
        formula are prefixed with an apostrophe."""
        query = self._query(request)
        out = io.StringIO()
        csv.writer(out).writerows(services.usage_csv_rows(query, request.user))
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="gateway-usage-{stamp}.csv"'
        return response

