"""Inventory API views: thin; the work is in nodes.services."""

from django.db.models import Count
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.core.api import (
    ERRORS,
    REASON_PARAMETER,
    ActionReasonSerializer,
    AuditedModelViewSet,
    body_reason,
    query_reason,
)
from nodes import services
from nodes.api.filtersets import AcceleratorFilter, NodeFilter
from nodes.api.serializers import (
    AcceleratorSerializer,
    CredentialSerializer,
    MaintenanceSerializer,
    NodeSerializer,
    NodeStatusChangeSerializer,
)
from nodes.models import Accelerator, Credential, Node


@extend_schema_view(destroy=extend_schema(parameters=[REASON_PARAMETER], responses={204: None, **ERRORS}))
class CredentialViewSet(AuditedModelViewSet):
    """SSH credentials (admin only for writes). ``private_key`` is write-only."""

    queryset = Credential.objects.annotate(node_count=Count("nodes")).order_by("name")
    serializer_class = CredentialSerializer
    secret_fields = ("private_key", "passphrase")
    ordering_fields = ["name", "created_at"]

    def perform_destroy(self, instance):
        services.delete_credential(instance, request=self.request, reason=query_reason(self.request))


@extend_schema_view(destroy=extend_schema(parameters=[REASON_PARAMETER], responses={204: None, **ERRORS}))
class NodeViewSet(AuditedModelViewSet):
    """Nodes of the cluster. Operators may probe and set maintenance; admins manage them."""

    queryset = Node.objects.select_related("credential").order_by("name")
    serializer_class = NodeSerializer
    filterset_class = NodeFilter
    ordering_fields = ["name", "status", "last_seen", "created_at"]
    operator_actions = ("probe", "maintenance")

    def perform_create(self, serializer):
        super().perform_create(serializer)
        services.request_probe(serializer.instance)

    def perform_update(self, serializer):
        super().perform_update(serializer)
        services.request_probe(serializer.instance)

    def perform_destroy(self, instance):
        services.delete_node(instance, request=self.request, reason=query_reason(self.request))

    @extend_schema(request=None, responses={202: NodeSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def probe(self, request, pk=None):
        """Probe the node now. Answers 202 at once; poll the node for the result."""
        node = services.request_probe(self.get_object(), request=request, record=True)
        return Response(self.get_serializer(node).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=MaintenanceSerializer, responses={200: NodeSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def maintenance(self, request, pk=None):
        """Enter (``enabled: true``) or leave maintenance."""
        node = self.get_object()
        body = MaintenanceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.set_maintenance(node, body.validated_data["enabled"], request=request,
                                 reason=body.validated_data.get("reason", ""))
        return Response(self.get_serializer(node).data)

    @extend_schema(request=ActionReasonSerializer, responses={200: NodeSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="reset-host-key")
    def reset_host_key(self, request, pk=None):
        """Forget the pinned SSH host key (after a reinstall); the next probe pins the new one. An optional
        ``reason`` is kept in the audit event."""
        node = self.get_object()
        node = services.request_probe(services.reset_host_key(node, request=request, reason=body_reason(request)))
        return Response(self.get_serializer(node).data)

    @extend_schema(responses={200: NodeStatusChangeSerializer(many=True), **ERRORS})
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        """The node's status transitions, newest first."""
        node = self.get_object()
        page = self.paginate_queryset(node.status_history.all())
        return self.get_paginated_response(NodeStatusChangeSerializer(page, many=True).data)


class AcceleratorViewSet(viewsets.ReadOnlyModelViewSet):
    """Accelerators as the last probe saw them. Filters: ``?node=&vendor=&kind=&health=&present=``."""

    queryset = Accelerator.objects.select_related("node").order_by("node__name", "vendor", "index")
    serializer_class = AcceleratorSerializer
    filterset_class = AcceleratorFilter
    ordering_fields = ["index", "utilization_percent", "temperature_c", "memory_used_bytes"]
