"""Inventory pages. Thin: reads for display, writes through forms and nodes.services."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core import audit, charts
from console.core.permissions import ADMIN, OPERATOR, has_role
from nodes import services
from nodes.charts import node_charts
from nodes.forms import CredentialForm, NodeForm
from nodes.models import Credential, Node


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied


@login_required
def node_list(request):
    nodes = Node.objects.select_related("credential").annotate(
        nvidia=Count("accelerators", filter=Q(accelerators__vendor="nvidia", accelerators__present=True)),
        huawei=Count("accelerators", filter=Q(accelerators__vendor="huawei", accelerators__present=True)),
        unhealthy=Count("accelerators", filter=Q(accelerators__present=True,
                                                 accelerators__health__in=["warning", "critical"])),
    ).order_by("name")
    status = request.GET.get("status")
    if status:
        nodes = nodes.filter(status=status)
    return render(request, "nodes/node_list.html", {"nodes": nodes, "status": status,
                                                    "can_admin": has_role(request.user, ADMIN),
                                                    "live": charts.stream_config(["cluster"])})


@login_required
def node_detail(request, pk):
    node = get_object_or_404(Node.objects.select_related("credential"), pk=pk)
    accelerators = list(node.accelerators.order_by("-present", "vendor", "index"))
    return render(request, "nodes/node_detail.html", {
        "node": node,
        "accelerators": accelerators,
        "live": charts.page_config(node_charts(node, accelerators),
                                   [f"node:{node.pk}"], stale_after_s=max(10.0, 3.0 * node.telemetry_interval_s),
                                   points=not charts.region_refresh(request)),
        "history": node.status_history.all()[:20],
        "can_operate": has_role(request.user, OPERATOR),
        "can_admin": has_role(request.user, ADMIN),
    })


@login_required
def node_edit(request, pk=None):
    _require(request, ADMIN)
    node = get_object_or_404(Node, pk=pk) if pk else None
    form = NodeForm(request.POST or None, instance=node)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
            audit.record("update" if node else "create", saved, request=request,
                         detail={"fields": sorted(form.changed_data)})
            services.request_probe(saved)
        messages.success(request, _("Node %(name)s saved; probing it now.") % {"name": saved.name})
        return redirect("node-detail", pk=saved.pk)
    return render(request, "nodes/node_form.html", {"form": form, "node": node})


@login_required
@require_POST
def node_probe(request, pk):
    _require(request, OPERATOR)
    node = services.request_probe(get_object_or_404(Node, pk=pk), request=request, record=True)
    messages.info(request, _("Probe of %(name)s requested.") % {"name": node.name})
    return redirect("node-detail", pk=node.pk)


@login_required
@require_POST
def node_maintenance(request, pk):
    _require(request, OPERATOR)
    node = get_object_or_404(Node, pk=pk)
    enabled = request.POST.get("enabled") == "1"
    services.set_maintenance(node, enabled, request=request)
    if enabled:
        messages.success(request, _("%(name)s is in maintenance: probes no longer change its status.")
                         % {"name": node.name})
    else:
        messages.success(request, _("Maintenance of %(name)s ended: probing it now; its status below follows.")
                         % {"name": node.name})
    return redirect("node-detail", pk=node.pk)


@login_required
def credential_list(request):
    _require(request, ADMIN)
    form = CredentialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        credential = services.create_credential(
            name=form.cleaned_data["name"], username=form.cleaned_data["username"],
            private_key=form.cleaned_data["private_key"], passphrase=form.cleaned_data["passphrase"] or None,
        )
        audit.record("create", credential, request=request, detail={"fingerprint": credential.fingerprint})
        messages.success(request, _("Credential %(name)s stored.") % {"name": credential.name})
        return redirect("credential-list")
    credentials = Credential.objects.annotate(node_count=Count("nodes")).order_by("name")
    return render(request, "nodes/credential_list.html", {"form": form, "credentials": credentials})
