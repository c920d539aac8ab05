"""Jobs API views: thin; the work is in jobs.services and jobs.reconciler."""

import django_filters
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from console.core.api import (
    ERRORS,
    REASON_PARAMETER,
    ActionReasonSerializer,
    AuditedModelViewSet,
    body_reason,
    query_reason,
)
from console.core.permissions import RolePermission
from jobs import services
from jobs.api.serializers import InstanceSerializer, JobSerializer, ScaleSerializer
from jobs.models import Instance, Job
from jobs.preview import preview_placement
from jobs.recommend import recommend
from models_registry.models import ModelVersion


class JobFilter(django_filters.FilterSet):
    class Meta:
        model = Job
        fields = ["engine", "state", "desired_state", "model_version"]


@extend_schema_view(destroy=extend_schema(parameters=[REASON_PARAMETER], responses={204: None, **ERRORS}))
class JobViewSet(AuditedModelViewSet):
    """Serving jobs. Operators start, stop, restart and scale; admins create, edit and delete."""

    queryset = Job.objects.select_related("model_version__model").prefetch_related("instances__node").order_by("name")
    serializer_class = JobSerializer
    filterset_class = JobFilter
    operator_actions = ("start", "stop", "restart", "scale")
    ordering_fields = ["name", "state", "created_at"]

    def perform_create(self, serializer):
        serializer.save()  # JobSerializer.create is services.create_job: create, audit, start

    def perform_destroy(self, instance):
        services.delete_job(instance, request=self.request, reason=query_reason(self.request))

    def _accepted(self, job):
        job.refresh_from_db()
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: JobSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """Desired state running. 409 when the model version failed verification or is deprecated, or
        when no node has room for a replica now."""
        return self._accepted(services.start_job(self.get_object(), request=request))

    @extend_schema(request=ActionReasonSerializer, responses={202: JobSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        """Desired state stopped; an optional ``reason`` is kept in the audit event."""
        job = self.get_object()
        return self._accepted(services.stop_job(job, request=request, reason=body_reason(request)))

    @extend_schema(request=None, responses={202: JobSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        """Rolling restart, one replica at a time. 409 when the job is stopped."""
        return self._accepted(services.restart_job(self.get_object(), request=request))

    @extend_schema(request=ScaleSerializer, responses={202: JobSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def scale(self, request, pk=None):
        body = ScaleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._accepted(services.scale_job(self.get_object(), body.validated_data["replicas"], request=request))

    @extend_schema(request=JobSerializer, responses={200: dict, **ERRORS})
    @action(detail=False, methods=["post"], url_path="preview-placement")
    def preview_placement(self, request):
        """Where a job with this body would be placed now, without creating it."""
        serializer = JobSerializer(data=request.data, context={"request": request, "preview": True})
        serializer.is_valid(raise_exception=True)
        return Response(preview_placement(serializer.validated_data))


class InstanceFilter(django_filters.FilterSet):
    job = django_filters.NumberFilter(field_name="job_id")
    node = django_filters.NumberFilter(field_name="node_id")

    class Meta:
        model = Instance
        fields = ["job", "node", "state"]


class InstanceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Instances: what runs. Filter ``?job=``."""

    queryset = (
        Instance.objects.select_related("node", "job")
        .prefetch_related("allocations")
        .order_by("job_id", "replica", "member")
    )
    serializer_class = InstanceSerializer
    filterset_class = InstanceFilter

    @extend_schema(
        parameters=[
            OpenApiParameter("tail", int, description="lines (default 200, max 5000)"),
            OpenApiParameter("previous", bool, description="the previous run's log"),
        ],
        responses={200: dict, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        """The tail of the instance's log on its node (or of its previous run)."""
        instance = self.get_object()
        try:
            lines = min(max(int(request.query_params.get("tail", 200)), 1), 5000)
        except ValueError:
            return Response({"tail": ["An integer."]}, status=status.HTTP_400_BAD_REQUEST)
        previous = request.query_params.get("previous") in ("1", "true", "yes")
        return Response(services.instance_logs(instance, lines, previous))


class RecommendSerializer(serializers.Serializer):
    """``POST model-versions/{id}/recommend/``: ``vendor`` (``nvidia``, ``huawei`` or ``cpu``; default: the
    vendor with the most free accelerators that can serve the format), ``replicas`` (default 1)."""

    vendor = serializers.ChoiceField(choices=["nvidia", "huawei", "cpu"], required=False)
    replicas = serializers.IntegerField(required=False, min_value=1, max_value=64, default=1)


class RecommendView(APIView):
    """How to deploy a model version here, and whether it fits now (jobs.recommend). Operators; nothing is
    created: ``job`` is the body of a ``POST jobs/`` that deploys it."""

    permission_classes = [RolePermission]
    operator_actions = ("recommend",)
    action = "recommend"

    @extend_schema(request=RecommendSerializer, responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion.objects.select_related("model"), pk=pk)
        body = RecommendSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return Response(recommend(version, vendor=body.validated_data.get("vendor"),
                                  replicas=body.validated_data["replicas"]))
