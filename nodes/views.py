"""Inventory pages. Thin: reads for display, writes through forms and nodes.services.

Destructive actions (delete a node or a credential, reset a host key, enter maintenance) show a
confirmation with an optional reason first (console.core.confirm); the reason lands in the audit event."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.core import audit, charts
from console.core.confirm import ReasonForm, confirm_page
from console.core.pages import conflict_message, copy_api_errors
from console.core.permissions import ADMIN, OPERATOR, has_role
from nodes import services
from nodes.api.serializers import CredentialSerializer
from nodes.charts import node_charts
from nodes.crypto import SecretBoxError
from nodes.forms import CredentialEditForm, CredentialForm, GenerateKeyForm, NodeForm
from nodes.keys import KeyProblem
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
def node_maintenance(request, pk):
    """Enter maintenance after a confirmation with an optional reason (GET shows it; POST ``enabled=1``
    with ``reason`` does it); ``enabled=0`` ends maintenance at once."""
    _require(request, OPERATOR)
    node = get_object_or_404(Node, pk=pk)
    if request.method == "POST" and request.POST.get("enabled") == "0":
        services.set_maintenance(node, False, request=request)
        messages.success(request, _("Maintenance of %(name)s ended: probing it now; its status below follows.")
                         % {"name": node.name})
        return redirect("node-detail", pk=node.pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.set_maintenance(node, True, request=request, reason=form.cleaned_data["reason"])
        messages.success(request, _("%(name)s is in maintenance: probes no longer change its status.")
                         % {"name": node.name})
        return redirect("node-detail", pk=node.pk)
    serving = node.instances.active().count()
    return confirm_page(
        request, form, title=_("Put %(name)s in maintenance?") % {"name": node.name},
        question=_("Probes keep running but no longer change its status, and it is shown as in maintenance "
                   "until you end it."),
        consequences=[_("%(n)d instance(s) run on it now.") % {"n": serving}] if serving else [],
        button=_("Start maintenance"), cancel_url=reverse("node-detail", args=[pk]), hidden={"enabled": "1"},
        danger=False)


@login_required
def node_delete(request, pk):
    """Delete a node (admins) after a confirmation; refused (the API's 409) while instances run on it."""
    _require(request, ADMIN)
    node = get_object_or_404(Node, pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with conflict_message(request) as outcome:
            services.delete_node(node, request=request, reason=form.cleaned_data["reason"])
            messages.success(request, _("Node %(name)s deleted.") % {"name": node.name})
        return redirect("node-detail", pk=pk) if outcome.refused else redirect("node-list")
    return confirm_page(
        request, form, title=_("Delete %(name)s?") % {"name": node.name},
        question=_("The node, its accelerators and its status history are deleted; its events stay in the log. "
                   "Nothing is changed on the machine itself."),
        button=_("Delete the node"), cancel_url=reverse("node-detail", args=[pk]))


@login_required
def node_reset_host_key(request, pk):
    """Forget the pinned SSH host key (admins, after a confirmation): the next probe trusts and pins the
    key the node shows then."""
    _require(request, ADMIN)
    node = get_object_or_404(Node, pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            services.request_probe(services.reset_host_key(node, request=request,
                                                           reason=form.cleaned_data["reason"]))
        messages.success(request, _("Host key of %(name)s forgotten; the next connection pins the new one.")
                         % {"name": node.name})
        return redirect("node-detail", pk=pk)
    return confirm_page(
        request, form, title=_("Reset the host key of %(name)s?") % {"name": node.name},
        question=_("Do this only when you know the machine was reinstalled or its SSH keys were replaced: the "
                   "next connection trusts whatever key the address answers with."),
        consequences=[_("Pinned now: %(fingerprint)s") % {"fingerprint": node.host_key_fingerprint}]
        if node.host_key_fingerprint else [],
        button=_("Reset the host key"), cancel_url=reverse("node-detail", args=[pk]))


# --- credentials --------------------------------------------------------------------------------


def _credential_rows():
    rows = []
    for credential in Credential.objects.annotate(node_count=Count("nodes")).order_by("name"):
        try:
            line = services.authorized_key_line(credential)
        except (SecretBoxError, KeyProblem):  # cannot decrypt (the secret key changed): shown as unknown
            line = ""
        rows.append({"credential": credential, "authorized_key": line})
    return rows


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
    return render(request, "nodes/credential_list.html", {
        "form": form, "generate_form": GenerateKeyForm(prefix="generate"), "rows": _credential_rows()})


@login_required
@require_POST
def credential_generate(request):
    """Generate an Ed25519 key pair as a new credential; the page then shows its public key."""
    _require(request, ADMIN)
    form = GenerateKeyForm(request.POST, prefix="generate")
    if form.is_valid():
        credential = services.generate_credential(name=form.cleaned_data["name"],
                                                  username=form.cleaned_data["username"], request=request)
        messages.success(request, _("Key pair %(name)s generated: add its public key to the nodes' "
                                    "authorized_keys.") % {"name": credential.name})
        return redirect(reverse("credential-list") + f"#credential-{credential.pk}")
    return render(request, "nodes/credential_list.html", {
        "form": CredentialForm(), "generate_form": form, "rows": _credential_rows()})


@login_required
def credential_edit(request, pk):
    """Rename a credential, change its user or replace its key, through the API's serializer."""
    _require(request, ADMIN)
    credential = get_object_or_404(Credential, pk=pk)
    form = CredentialEditForm(request.POST or None,
                              initial={"name": credential.name, "username": credential.username})
    if request.method == "POST" and form.is_valid():
        serializer = CredentialSerializer(credential, data=form.api_payload(), partial=True)
        if serializer.is_valid():
            with transaction.atomic():
                credential = serializer.save()
                fields = sorted(k for k in form.changed_data if k != "passphrase")
                audit.record("update", credential, request=request, detail={"fields": fields})
            messages.success(request, _("Credential %(name)s saved.") % {"name": credential.name})
            return redirect("credential-list")
        copy_api_errors(form, serializer.errors)
    return render(request, "nodes/credential_form.html", {"form": form, "credential": credential})


@login_required
def credential_delete(request, pk):
    """Delete a credential (admins) after a confirmation; refused while nodes log in with it."""
    _require(request, ADMIN)
    credential = get_object_or_404(Credential, pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with conflict_message(request):
            services.delete_credential(credential, request=request, reason=form.cleaned_data["reason"])
            messages.success(request, _("Credential %(name)s deleted.") % {"name": credential.name})
        return redirect("credential-list")
    return confirm_page(
        request, form, title=_("Delete the credential %(name)s?") % {"name": credential.name},
        question=_("Its encrypted private key is deleted from the console. Remove its public key from the nodes' "
                   "authorized_keys as well."),
        button=_("Delete the credential"), cancel_url=reverse("credential-list"))
