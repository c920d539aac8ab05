"""Model registry API views: thin; the work is in models_registry.services."""

from contextlib import contextmanager

from django.db import transaction
from django.db.models import Count, Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from console.core import audit
from console.core.api import ERRORS, REASON_PARAMETER, AuditedModelViewSet, query_reason
from models_registry import services
from models_registry.api.filtersets import ModelFilter, ModelVersionFilter
from models_registry.api.serializers import (
    CopyRequestSerializer,
    CopyStatusChangeSerializer,
    ImportSerializer,
    KnownQuantizationSerializer,
    LineageSerializer,
    ModelCopySerializer,
    ModelFileSerializer,
    ModelSerializer,
    ModelVersionSerializer,
    PromoteSerializer,
    QuantizationSerializer,
    ReasonSerializer,
    VersionStatusChangeSerializer,
    known_quantizations,
)
from models_registry.models import Model, ModelCopy, ModelVersion, Quantization
from nodes.models import Node


@contextmanager
def service_errors():
    """Turn the services' bad input into a 400 with field messages (conflicts are 409 by the exception handler)."""
    try:
        yield
    except services.InvalidInput as exc:
        raise ValidationError(exc.errors) from None


class RegistryModelViewSet(AuditedModelViewSet):
    """Models (a family member independent of its weights). Admins write; deleting a model that still
    has versions is a 409."""

    queryset = Model.objects.prefetch_related(
        Prefetch("versions", queryset=ModelVersion.objects.select_related("model").order_by("version")), "aliases",
    ).order_by("name")
    serializer_class = ModelSerializer
    filterset_class = ModelFilter
    ordering_fields = ["name", "family", "parameters", "created_at"]

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance):
        services.refuse_delete_with_versions(instance)
        super().perform_destroy(instance)


class ModelVersionViewSet(AuditedModelViewSet):
    """Model versions: weights in a format and quantization, where they lie, their manifest and
    checksums, memory estimate, evaluations and aliases. Operators verify; admins register, import,
    promote, deprecate and delete. Filters: ``?model=&quantization=&status=&format=&catalog=&node=``."""

    queryset = (
        ModelVersion.objects.select_related("model", "node", "parent")
        .prefetch_related("evaluations", "aliases", "parent__evaluations")
        .annotate(file_count=Count("files"))
        .order_by("model__name", "version")
    )
    serializer_class = ModelVersionSerializer
    filterset_class = ModelVersionFilter
    ordering_fields = ["version", "status", "created_at", "size_bytes", "memory_required_bytes"]
    operator_actions = ("verify", "copies", "copy_detail", "copy_verify", "copy_cancel")

    def _fresh(self, pk, code=status.HTTP_200_OK):
        version = self.get_queryset().get(pk=pk)
        return Response(self.get_serializer(version).data, status=code)

    def create(self, request, *args, **kwargs):
        """Register a version. A directory source is inspected in the background: poll the version
        (``importing`` turns false; ``status`` ``failed`` with ``status_detail`` when the directory is
        unusable)."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():  # the version, its evaluations and its audit event, or nothing
            self.perform_create(serializer)
        return self._fresh(serializer.instance.pk, status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        with transaction.atomic():
            super().update(request, *args, **kwargs)
        return self._fresh(kwargs["pk"])

    @extend_schema(parameters=[REASON_PARAMETER], responses={204: None, **ERRORS})
    def destroy(self, request, *args, **kwargs):
        """Delete a version: 409 while a job uses it or an alias points at it. ``?reason=`` is kept in the
        audit event."""
        version = self.get_object()
        with service_errors():
            services.delete_version(version, request=request, reason=query_reason(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={202: ModelVersionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Compute the sha256 of every file on the node (operators). Answers 202; poll ``progress``
        (0..1) and ``status`` (``verified``, or ``failed`` naming the files)."""
        version = self.get_object()
        with service_errors():
            services.request_verify(version, request=request)
        audit.record("verify", version, request=request)
        return self._fresh(version.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(request=PromoteSerializer, responses={200: ModelVersionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """Point the model's alias (``production``, ``canary``...) at this version, atomically (admins)."""
        version = self.get_object()
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with service_errors():
            services.promote(version, body.validated_data["alias"], request=request)
        return self._fresh(version.pk)

    @extend_schema(request=ImportSerializer, responses={202: ModelVersionSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="import")
    def import_files(self, request, pk=None):
        """Point the version at a directory on a node and inspect it again (a catalog entry getting
        local files, or a failed import retried). 409 for a verified version: its manifest is immutable."""
        version = self.get_object()
        body = ImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        node = body.validated_data.get("node") or Node.objects.filter(name="local").first()
        with service_errors():
            services.request_import(version, source_uri=body.validated_data["source_uri"], node=node, request=request)
        return self._fresh(version.pk, status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReasonSerializer, responses={200: ModelVersionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def deprecate(self, request, pk=None):
        """Keep the version for history but refuse it to new jobs; its aliases are removed."""
        version = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with service_errors():
            services.deprecate(version, body.validated_data.get("reason", ""), request=request)
        return self._fresh(version.pk)

    @extend_schema(request=None, responses={200: ModelVersionSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def reinstate(self, request, pk=None):
        """Bring a deprecated version back to ``registered``."""
        version = self.get_object()
        with service_errors():
            services.reinstate(version, request=request)
        return self._fresh(version.pk)

    @extend_schema(responses={200: LineageSerializer, **ERRORS})
    @action(detail=True, methods=["get"])
    def lineage(self, request, pk=None):
        """Ancestors (parent first) and children of the version."""
        return Response(LineageSerializer(services.lineage(self.get_object())).data)

    @extend_schema(responses={200: ModelFileSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def files(self, request, pk=None):
        """The manifest: files with size, mtime and sha256 (empty until verified)."""
        page = self.paginate_queryset(self.get_object().files.order_by("path"))
        return self.get_paginated_response(ModelFileSerializer(page, many=True).data)

    @extend_schema(responses={200: VersionStatusChangeSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The version's status transitions, newest first."""
        page = self.paginate_queryset(self.get_object().status_history.all())
        return self.get_paginated_response(VersionStatusChangeSerializer(page, many=True).data)

    # --- copies on nodes ------------------------------------------------------------------------

    def _copy(self, version: ModelVersion, copy_id) -> ModelCopy:
        from django.shortcuts import get_object_or_404

        return get_object_or_404(ModelCopy.objects.select_related("node", "version__model", "source__node"),
                                 pk=copy_id, version=version)

    @extend_schema(methods=["GET"], responses={200: ModelCopySerializer(many=True), **ERRORS})
    @extend_schema(methods=["POST"], request=CopyRequestSerializer, responses={202: ModelCopySerializer, **ERRORS})
    @action(detail=True, methods=["get", "post"])
    def copies(self, request, pk=None):
        """GET: the version's copies on nodes (the origin first). POST ``{node, path?, bandwidth_limit?}``
        (operators): copy the files from a node with a ready copy; 202, then poll ``status`` and
        ``progress``. 409 when the version is not verified, when no ready copy exists to read from, when
        the node already has one, or when the target has less free disk than needed (both numbers said)."""
        version = self.get_object()
        if request.method == "GET":
            rows = version.copies.select_related("node", "source__node").order_by("-origin", "node__name")
            page = self.paginate_queryset(rows)
            return self.get_paginated_response(ModelCopySerializer(page, many=True).data)
        body = CopyRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        with service_errors():
            copy = services.copies.request_copy(version, body.validated_data["node"],
                                                path=body.validated_data.get("path") or None,
                                                bandwidth_limit=body.validated_data.get("bandwidth_limit"),
                                                request=request)
        return Response(ModelCopySerializer(self._copy(version, copy.pk)).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(methods=["GET"], responses={200: ModelCopySerializer, **ERRORS})
    @extend_schema(methods=["DELETE"], responses={202: ModelCopySerializer, **ERRORS})
    @action(detail=True, methods=["get", "delete"], url_path=r"copies/(?P<copy_id>[0-9]+)")
    def copy_detail(self, request, pk=None, copy_id=None):
        """GET: one copy. DELETE (operators): remove its files on the node, then the copy (202: it is
        ``removing``). 409 while an instance uses it, while it is being copied (cancel first), and for
        the origin directory."""
        copy = self._copy(self.get_object(), copy_id)
        if request.method == "GET":
            return Response(ModelCopySerializer(copy).data)
        with service_errors():
            services.copies.request_remove(copy, request=request)
        return Response(ModelCopySerializer(copy).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: ModelCopySerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path=r"copies/(?P<copy_id>[0-9]+)/verify")
    def copy_verify(self, request, pk=None, copy_id=None):
        """Hash the copy's files on its node against the verified manifest (operators); 202, then poll."""
        copy = self._copy(self.get_object(), copy_id)
        with service_errors():
            services.copies.request_verify_copy(copy, request=request)
        audit.record("verify_copy", copy.version, request=request, detail={"node": copy.node.name, "path": copy.path})
        return Response(ModelCopySerializer(copy).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: ModelCopySerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path=r"copies/(?P<copy_id>[0-9]+)/cancel")
    def copy_cancel(self, request, pk=None, copy_id=None):
        """Stop a pending or running transfer (operators): the copy ends ``failed`` ("cancelled"); asking
        for the copy again resumes from the files already written."""
        copy = self._copy(self.get_object(), copy_id)
        with service_errors():
            services.copies.cancel_copy(copy, request=request)
        return Response(ModelCopySerializer(copy).data)

    @extend_schema(responses={200: CopyStatusChangeSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"copies/(?P<copy_id>[0-9]+)/history")
    def copy_history(self, request, pk=None, copy_id=None):
        """The copy's status transitions, newest first."""
        copy = self._copy(self.get_object(), copy_id)
        page = self.paginate_queryset(copy.status_history.all())
        return self.get_paginated_response(CopyStatusChangeSerializer(page, many=True).data)


class QuantizationViewSet(AuditedModelViewSet):
    """Quantizations added by admins beside the built-in list; ``known/`` lists both."""

    queryset = Quantization.objects.order_by("name")
    serializer_class = QuantizationSerializer
    ordering_fields = ["name"]

    def perform_destroy(self, instance):
        services.refuse_delete_in_use(instance)
        super().perform_destroy(instance)

    @extend_schema(responses={200: KnownQuantizationSerializer(many=True), **ERRORS})
    @action(detail=False, methods=["get"], pagination_class=None)
    def known(self, request):
        """Every quantization a version may use, built in or added, with bits per parameter."""
        return Response(KnownQuantizationSerializer(known_quantizations(), many=True).data)
