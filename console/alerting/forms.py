"""Forms of the alerting pages. They only shape input: validation is the API serializers' (one set of
rules and messages for the pages and for scripts), applied by the views through ``api_payload``."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.alerting.choices import SERIES_KINDS, ChannelKind, Comparator, RuleKind, Severity
from console.alerting.labels import matchers_text
from console.telemetry.series import SERIES

DATETIME_INPUT = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class RuleForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    kind = forms.ChoiceField(label=_("Kind"), choices=[(k, RuleKind(k).label) for k in SERIES_KINDS])
    series = forms.ChoiceField(label=_("Series"), required=False,
                               choices=[("", "—")] + [(name, f"{name} ({d.unit})" if d.unit else name)
                                                      for name, d in SERIES.items()])
    comparator = forms.ChoiceField(label=_("Comparator"), choices=Comparator.choices)
    threshold = forms.FloatField(label=_("Threshold"), help_text=_(
        "Relative rules: the change in percent against the median, e.g. -50 for “down more than 50 %”."))
    for_seconds = forms.IntegerField(label=_("For (seconds)"), min_value=0, initial=0, help_text=_(
        "How long the condition must hold before the alert fires."))
    window_seconds = forms.IntegerField(label=_("Window (seconds)"), required=False, min_value=0, help_text=_(
        "Relative rules: the history the median is taken over (default 3600)."))
    severity = forms.ChoiceField(label=_("Severity"), choices=Severity.choices, initial=Severity.WARNING)
    matchers = forms.CharField(label=_("Label matchers"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text=_('One per line: node_name=~"gpu-.*", vendor="huawei", job_name!="test".'))
    summary_template = forms.CharField(label=_("Summary template"), required=False, max_length=2000, help_text=_(
        "E.g. {{ labels.node_name }} is at {{ value }} {{ unit }}. Variables: labels.<name>, value, threshold, "
        "unit, series, rule, severity, entity, detail, current, baseline."))
    description_template = forms.CharField(label=_("Description template"), required=False, max_length=2000,
                                           widget=forms.Textarea(attrs={"rows": 3}))
    runbook_url = forms.CharField(label=_("Runbook URL"), required=False, max_length=500)
    group_by = forms.CharField(label=_("Group by"), required=False, initial="alertname, node",
                               help_text=_("Label names, comma-separated; … for one group per alert."))
    group_wait_s = forms.IntegerField(label=_("Group wait (s)"), required=False, min_value=0)
    group_interval_s = forms.IntegerField(label=_("Group interval (s)"), required=False, min_value=1)
    repeat_interval_s = forms.IntegerField(label=_("Repeat interval (s)"), required=False, min_value=60)
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args, rule=None, **kwargs):
        self.rule = rule
        if rule is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": rule.name, "kind": rule.kind, "series": rule.series, "comparator": rule.comparator,
                "threshold": rule.threshold, "for_seconds": rule.for_seconds, "window_seconds": rule.window_seconds,
                "severity": rule.severity, "matchers": matchers_text(rule.matchers),
                "summary_template": rule.summary_template, "description_template": rule.description_template,
                "runbook_url": rule.runbook_url, "group_by": ", ".join(rule.group_by or []),
                "group_wait_s": rule.group_wait_s, "group_interval_s": rule.group_interval_s,
                "repeat_interval_s": rule.repeat_interval_s, "enabled": rule.enabled,
            }
        super().__init__(*args, **kwargs)
        if rule is not None and rule.builtin:
            for name in ("kind", "series"):
                del self.fields[name]

    def api_payload(self) -> dict:
        data = dict(self.cleaned_data)
        data["matchers"] = _lines(data.get("matchers", ""))
        data["group_by"] = [part.strip() for part in (data.get("group_by") or "").split(",") if part.strip()]
        if data["group_by"] == ["…"]:
            data["group_by"] = ["..."]
        return data


class SilenceForm(forms.Form):
    DURATIONS = [("3600", _("1 hour")), ("7200", _("2 hours")), ("14400", _("4 hours")), ("28800", _("8 hours")),
                 ("86400", _("1 day")), ("259200", _("3 days")), ("604800", _("1 week"))]

    matchers = forms.CharField(label=_("Matchers"), widget=forms.Textarea(attrs={"rows": 4}), help_text=_(
        'One per line; alerts matching all of them are silenced: alertname="Disk nearly full", node_name=~"npu-.*".'))
    starts_at = forms.DateTimeField(label=_("Starts at (UTC)"), required=False, input_formats=DATETIME_INPUT,
                                    widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
                                    help_text=_("Empty: now."))
    duration = forms.ChoiceField(label=_("Duration"), choices=DURATIONS, initial="7200")
    comment = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 2}), help_text=_(
        "Why, and who is on it (a ticket number helps)."))

    def api_payload(self) -> dict:
        starts = self.cleaned_data.get("starts_at") or timezone.now()
        return {"matchers": _lines(self.cleaned_data["matchers"]), "starts_at": starts,
                "ends_at": starts + timedelta(seconds=int(self.cleaned_data["duration"])),
                "comment": self.cleaned_data["comment"]}


class ChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=ChannelKind.choices)
    url = forms.CharField(label=_("URL"), required=False, max_length=2000, help_text=_(
        "The receiver's http(s) URL: the incoming-webhook URL for Slack, DingTalk, WeCom and Feishu."))
    urls = forms.CharField(label=_("Alertmanager URLs"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
                           help_text=_("Alertmanager API channels: one base URL per line, every member of the cluster "
                                       "(http://am-1:9093). Each gets every alert."))
    address = forms.CharField(label=_("Email addresses"), required=False, max_length=1000,
                              help_text=_("Email channels: one or more, comma-separated."))
    secret = forms.CharField(label=_("Signing secret"), required=False, max_length=500,
                             widget=forms.PasswordInput(render_value=False), help_text=_(
                                 "Optional. DingTalk “加签” (SEC…) or Feishu signature secret; for webhooks the "
                                 "HMAC key of X-Boom-Signature. Leave empty to keep the stored one."))
    auth_username = forms.CharField(label=_("Basic auth user"), required=False, max_length=200, help_text=_(
        "Alertmanager API channels: the user of basic auth (with the password below); empty for no basic auth."))
    password = forms.CharField(label=_("Basic auth password"), required=False, max_length=500,
                               widget=forms.PasswordInput(render_value=False),
                               help_text=_("Leave empty to keep the stored one."))
    bearer_token = forms.CharField(label=_("Bearer token"), required=False, max_length=4000,
                                   widget=forms.PasswordInput(render_value=False), help_text=_(
                                       "Alertmanager API channels: instead of basic auth. Leave empty to keep the "
                                       "stored one."))
    timeout_s = forms.IntegerField(label=_("Time-out (s)"), required=False, min_value=1, max_value=120,
                                   help_text=_("Of one request; empty: the console's default."))
    send_resolved = forms.BooleanField(label=_("Send resolved"), required=False, initial=True)
    min_severity = forms.ChoiceField(label=_("Minimum severity"), choices=Severity.choices, initial=Severity.INFO)
    matchers = forms.CharField(label=_("Only alerts matching"), required=False,
                               widget=forms.Textarea(attrs={"rows": 2}), help_text=_("One matcher per line."))
    max_alerts = forms.IntegerField(label=_("Max alerts per message"), min_value=0, initial=0,
                                    help_text=_("0: no limit."))
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args, channel=None, **kwargs):
        self.channel = channel
        if channel is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": channel.name, "kind": channel.kind, "url": channel.url, "address": channel.address,
                "urls": "\n".join(channel.urls or []), "auth_username": channel.auth_username,
                "timeout_s": channel.timeout_s,
                "send_resolved": channel.send_resolved, "min_severity": channel.min_severity,
                "matchers": matchers_text(channel.matchers), "max_alerts": channel.max_alerts,
                "enabled": channel.enabled,
            }
        super().__init__(*args, **kwargs)
        if channel is not None:
            self.fields["kind"].disabled = True

    def api_payload(self) -> dict:
        data = dict(self.cleaned_data)
        data["matchers"] = _lines(data.get("matchers", ""))
        for secret in ("secret", "password", "bearer_token"):
            if not data.get(secret):
                data.pop(secret, None)
        kind = self.channel.kind if self.channel is not None else data.get("kind")
        if kind == ChannelKind.ALERTMANAGER_API:
            data["urls"] = _lines(data.get("urls", ""))
        else:
            for name in ("urls", "auth_username"):
                if not data.get(name):
                    data.pop(name, None)
        if self.channel is not None:
            data.pop("kind", None)
        return data
