"""Alerting pages: alerts (firing, pending, resolved), rules, silences, channels. Thin: reads for display,
writes through the API serializers (validation) and console.alerting.services."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from console.alerting import services
from console.alerting.api.serializers import AlertRuleSerializer, NotificationChannelSerializer, SilenceSerializer
from console.alerting.choices import ACTIVE_STATES, AlertState, NotificationStatus, Severity, Suppression
from console.alerting.forms import ChannelForm, RuleForm, SilenceForm
from console.alerting.labels import matchers_text
from console.alerting.models import Alert, AlertRule, Notification, NotificationChannel, Silence
from console.core import audit
from console.core.charts import stream_config
from console.core.pages import conflict_message
from console.core.permissions import ADMIN, OPERATOR, VIEWER, has_role

TABS = ("firing", "pending", "resolved", "all")


def _require(request, role):
    if not has_role(request.user, role):
        raise PermissionDenied


def _serializer_errors_to_form(form, errors) -> None:
    for field, messages_ in errors.items():
        target = field if field in form.fields else None
        for message in messages_ if isinstance(messages_, list) else [messages_]:
            form.add_error(target, f"{field}: {message}" if target is None and field != "non_field_errors"
                           else str(message))


@login_required
def alert_list(request):
    _require(request, VIEWER)
    tab = request.GET.get("state", "firing")
    tab = tab if tab in TABS else "firing"
    alerts = Alert.objects.select_related("group").order_by("-severity_rank", "-active_since", "-id")
    if tab != "all":
        alerts = alerts.filter(state=tab)
    if tab == "resolved":
        alerts = alerts.order_by("-ended_at", "-id")
    filters = {key: request.GET.get(key, "") for key in ("severity", "rule", "node_name", "acknowledged",
                                                         "suppressed", "flapping", "q")}
    if filters["severity"] in Severity.values:
        alerts = alerts.filter(severity=filters["severity"])
    if filters["rule"].isdigit():
        alerts = alerts.filter(rule_id=int(filters["rule"]))
    if filters["node_name"]:
        alerts = alerts.filter(labels__node_name=filters["node_name"])
    if filters["acknowledged"] in ("yes", "no"):
        alerts = alerts.filter(acknowledged_at__isnull=filters["acknowledged"] == "no")
    if filters["suppressed"] in ("yes", "no"):
        alerts = alerts.exclude(suppressed="") if filters["suppressed"] == "yes" else alerts.filter(suppressed="")
    if filters["flapping"] == "yes":
        alerts = alerts.filter(flapping=True)
    if filters["q"]:
        alerts = alerts.filter(Q(rule_name__icontains=filters["q"]) | Q(annotations__summary__icontains=filters["q"]))
    counts = Alert.objects.aggregate(
        firing=Count("pk", filter=Q(state=AlertState.FIRING)), pending=Count("pk", filter=Q(state=AlertState.PENDING)))
    page = Paginator(alerts, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "alerting/alert_list.html", {
        "page": page, "tab": tab, "tabs": TABS, "filters": filters, "counts": counts,
        "rules": AlertRule.objects.order_by("name").values_list("pk", "name"), "severities": Severity.choices,
        "query": query.urlencode(), "can_operate": has_role(request.user, OPERATOR),
        "live": stream_config(["alerts"]),
    })


@login_required
def alert_detail(request, pk):
    _require(request, VIEWER)
    alert = get_object_or_404(Alert.objects.select_related("group", "rule", "silenced_by", "inhibited_by"), pk=pk)
    notifications = []
    if alert.group_id:
        notifications = (Notification.objects.filter(group_id=alert.group_id).select_related("channel")
                         .order_by("-created_at")[:20])
    return render(request, "alerting/alert_detail.html", {
        "alert": alert, "transitions": alert.transitions.all()[:100], "notifications": notifications,
        "can_operate": has_role(request.user, OPERATOR), "live": stream_config(["alerts"]),
    })


@login_required
@require_POST
def alert_ack(request, pk):
    _require(request, OPERATOR)
    alert = get_object_or_404(Alert, pk=pk)
    with conflict_message(request):
        services.acknowledge(alert, user=request.user, comment=request.POST.get("comment", ""), request=request)
        messages.success(request, _("Alert acknowledged: no repeats until it resolves."))
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                                 require_https=request.is_secure()):
        return redirect(back)
    return redirect("alerting-alert", pk=pk)


@login_required
@require_POST
def alert_unack(request, pk):
    _require(request, OPERATOR)
    services.unacknowledge(get_object_or_404(Alert, pk=pk), request=request)
    return redirect("alerting-alert", pk=pk)


# ------------------------------------------------------------------------------------------- rules


@login_required
def rule_list(request):
    _require(request, VIEWER)
    rules = AlertRule.objects.annotate(
        firing=Count("alerts", filter=Q(alerts__state=AlertState.FIRING)),
        pending=Count("alerts", filter=Q(alerts__state=AlertState.PENDING)),
    ).order_by("-builtin", "name")
    return render(request, "alerting/rule_list.html", {"rules": rules, "can_admin": has_role(request.user, ADMIN)})


@login_required
def rule_edit(request, pk=None):
    _require(request, ADMIN)
    rule = get_object_or_404(AlertRule, pk=pk) if pk else None
    form = RuleForm(request.POST or None, rule=rule)
    if request.method == "POST" and form.is_valid():
        serializer = AlertRuleSerializer(rule, data=form.api_payload(), partial=rule is not None,
                                         context={"request": request})
        if serializer.is_valid():
            was_enabled = rule.enabled if rule else None
            with transaction.atomic():
                saved = serializer.save()
                audit.record("update" if rule else "create", saved, request=request)
                services.rule_saved(saved, was_enabled=was_enabled, request=request)
            messages.success(request, _("Rule %(name)s saved.") % {"name": saved.name})
            return redirect("alerting-rules")
        _serializer_errors_to_form(form, serializer.errors)
    return render(request, "alerting/rule_form.html", {"form": form, "rule": rule})


@login_required
@require_POST
def rule_toggle(request, pk):
    _require(request, ADMIN)
    rule = get_object_or_404(AlertRule, pk=pk)
    was_enabled = rule.enabled
    with transaction.atomic():
        AlertRule.objects.filter(pk=pk).update(enabled=not was_enabled)
        rule.enabled = not was_enabled
        audit.record("update", rule, request=request, detail={"enabled": rule.enabled})
        services.rule_saved(rule, was_enabled=was_enabled, request=request)
    return redirect("alerting-rules")


@login_required
@require_POST
def rule_delete(request, pk):
    _require(request, ADMIN)
    rule = get_object_or_404(AlertRule, pk=pk)
    with conflict_message(request):
        services.delete_rule(rule, request=request)
        messages.success(request, _("Rule deleted; its active alerts were resolved."))
    return redirect("alerting-rules")


# ----------------------------------------------------------------------------------------- silences


@login_required
def silence_list(request):
    _require(request, VIEWER)
    can_operate = has_role(request.user, OPERATOR)
    initial = {}
    from_alert = None
    if request.GET.get("alert", "").isdigit():
        from_alert = Alert.objects.filter(pk=int(request.GET["alert"])).first()
        if from_alert is not None:
            initial["matchers"] = matchers_text(services.silence_matchers_for(from_alert))
    form = SilenceForm(request.POST or None, initial=initial)
    if request.method == "POST":
        _require(request, OPERATOR)
        if form.is_valid():
            serializer = SilenceSerializer(data=form.api_payload(), context={"request": request})
            if serializer.is_valid():
                data = serializer.validated_data
                services.create_silence(matchers=data["matchers"], starts_at=data["starts_at"],
                                        ends_at=data["ends_at"], comment=data["comment"], user=request.user,
                                        request=request)
                messages.success(request, _("Silence created."))
                return redirect("alerting-silences")
            _serializer_errors_to_form(form, serializer.errors)
    silences = Silence.objects.annotate(
        silenced=Count("alerts", filter=Q(alerts__state__in=ACTIVE_STATES, alerts__suppressed=Suppression.SILENCED)),
    ).order_by("-ends_at", "-id")[:200]
    return render(request, "alerting/silence_list.html", {"form": form, "silences": silences,
                                                          "can_operate": can_operate, "from_alert": from_alert})


@login_required
@require_POST
def silence_expire(request, pk):
    _require(request, OPERATOR)
    silence = get_object_or_404(Silence, pk=pk)
    with conflict_message(request):
        services.expire_silence(silence, request=request)
        messages.success(request, _("Silence expired."))
    return redirect("alerting-silences")


# ----------------------------------------------------------------------------------------- channels


@login_required
def channel_list(request):
    _require(request, VIEWER)
    channels = NotificationChannel.objects.annotate(
        pending=Count("notifications", filter=Q(notifications__status=NotificationStatus.PENDING)),
        failed=Count("notifications", filter=Q(notifications__status=NotificationStatus.FAILED)),
    ).order_by("name")
    return render(request, "alerting/channel_list.html", {
        "channels": channels, "can_admin": has_role(request.user, ADMIN),
        "can_operate": has_role(request.user, OPERATOR),
    })


@login_required
def channel_detail(request, pk):
    _require(request, VIEWER)
    channel = get_object_or_404(NotificationChannel, pk=pk)
    attempts = Paginator(channel.attempts.select_related("notification").order_by("-started_at", "-id"), 50)
    return render(request, "alerting/channel_detail.html", {
        "channel": channel, "page": attempts.get_page(request.GET.get("page")),
        "held": channel.notifications.filter(status=NotificationStatus.PENDING).order_by("created_at")[:50],
        "can_admin": has_role(request.user, ADMIN), "can_operate": has_role(request.user, OPERATOR),
        "show_url": has_role(request.user, ADMIN),
    })


@login_required
def channel_edit(request, pk=None):
    _require(request, ADMIN)
    channel = get_object_or_404(NotificationChannel, pk=pk) if pk else None
    form = ChannelForm(request.POST or None, channel=channel)
    if request.method == "POST" and form.is_valid():
        serializer = NotificationChannelSerializer(channel, data=form.api_payload(), partial=channel is not None,
                                                   context={"request": request})
        if serializer.is_valid():
            was_enabled = channel.enabled if channel else True
            with transaction.atomic():
                saved = serializer.save()
                audit.record("update" if channel else "create", saved, request=request)
                if saved.enabled and not was_enabled:
                    services.enable_channel(saved, request=request)
            messages.success(request, _("Channel %(name)s saved.") % {"name": saved.name})
            return redirect("alerting-channel", pk=saved.pk)
        _serializer_errors_to_form(form, serializer.errors)
    return render(request, "alerting/channel_form.html", {"form": form, "channel": channel})


@login_required
@require_POST
def channel_test(request, pk):
    _require(request, OPERATOR)
    channel = get_object_or_404(NotificationChannel, pk=pk)
    attempt = services.send_test(channel, request=request)
    if attempt.ok:
        messages.success(request, _("Test notification delivered in %(ms)s ms.") % {"ms": attempt.duration_ms})
    else:
        messages.error(request, _("Test notification failed: %(error)s") % {"error": attempt.error})
    for answer in attempt.answers:  # alertmanager-api: what each Alertmanager said, to this operator only
        text = _("%(member)s answered %(status)s %(excerpt)s") % {
            "member": answer["member"], "status": answer["status_code"] or answer["error"],
            "excerpt": answer["excerpt"]}
        (messages.info if answer["ok"] else messages.warning)(request, text.strip())
    return redirect("alerting-channel", pk=pk)


@login_required
@require_POST
def channel_toggle(request, pk):
    _require(request, ADMIN)
    channel = get_object_or_404(NotificationChannel, pk=pk)
    if channel.enabled:
        services.disable_channel(channel, request=request)
    else:
        services.enable_channel(channel, request=request)
    return redirect("alerting-channel", pk=pk)
