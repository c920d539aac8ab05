"""The create-job form. Validation is the API serializer's, so that the page and REST agree."""

from django import forms
from django.utils.translation import gettext_lazy as _

from console.core.confirm import REASON_MAX
from jobs.choices import PlacementStrategy
from jobs.engines.registry import engine_choices
from models_registry.models import ModelVersion


class JobForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=63)
    model_version = forms.ModelChoiceField(label=_("Model version"),
                                           queryset=ModelVersion.objects.select_related("model"))
    engine = forms.ChoiceField(label=_("Engine"), choices=engine_choices)
    replicas = forms.IntegerField(label=_("Replicas"), min_value=0, max_value=64, initial=1)
    accelerators_per_replica = forms.IntegerField(label=_("Accelerators per replica"), min_value=0, max_value=128,
                                                  initial=1)
    nodes_per_replica = forms.IntegerField(label=_("Nodes per replica"), min_value=1, max_value=16, initial=1)
    placement = forms.ChoiceField(label=_("Placement"), choices=PlacementStrategy.choices)
    node_selector = forms.CharField(label=_("Node selector"), required=False,
                                    help_text=_("key=value, one per line"), widget=forms.Textarea(attrs={"rows": 2}))
    extra_args = forms.CharField(label=_("Extra arguments"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text=_("One argument per line; passed literally, never through a shell."))
    env = forms.CharField(label=_("Environment"), required=False, widget=forms.Textarea(attrs={"rows": 2}),
                          help_text=_("NAME=value, one per line"))
    max_model_len = forms.IntegerField(label=_("Max model length"), required=False, min_value=1)
    options = forms.JSONField(label=_("Engine options"), required=False, initial=dict,
                              widget=forms.Textarea(attrs={"rows": 2}),
                              help_text=_('JSON, for example {"python": "/opt/venv/bin/python3", "ttft_ms": 80}'))
    start = forms.BooleanField(label=_("Start now"), required=False, initial=True)
    # Shown only after the placement preview called the job unplaceable (jobs.views.job_create).
    confirm_unplaceable = forms.BooleanField(
        label=_("Create it anyway: it waits, pending, until a node has room"), required=False)

    def api_payload(self) -> dict:
        """The JSON body the API serializer validates."""
        data = self.cleaned_data
        return {
            "name": data["name"], "model_version": data["model_version"].pk, "engine": data["engine"],
            "replicas": data["replicas"], "accelerators_per_replica": data["accelerators_per_replica"],
            "nodes_per_replica": data["nodes_per_replica"], "placement": data["placement"],
            "node_selector": _pairs(data["node_selector"]),
            "extra_args": [line for line in (data["extra_args"] or "").splitlines() if line.strip()],
            "env": _pairs(data["env"]), "max_model_len": data["max_model_len"], "options": data["options"] or {},
            "desired_state": "running" if data.get("start") else "stopped",
        }


def _pairs(text: str) -> dict[str, str]:
    """``NAME=value`` lines as a dict (blank lines skipped)."""
    out = {}
    for line in (text or "").splitlines():
        if line.strip():
            key, _sep, value = line.strip().partition("=")
            out[key.strip()] = value.strip()
    return out


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value: a secret typed in is not echoed back in the page, even when
    the form comes back with an error."""

    def format_value(self, value):
        return None


def _lines(mapping: dict) -> str:
    return "\n".join(f"{key}={value}" for key, value in (mapping or {}).items())


class JobEditForm(JobForm):
    """Edit a job (admins): the fields ``PATCH jobs/{id}/`` accepts, prefilled from the job. The desired
    state is the actions' business (start, stop), not the edit's."""

    def __init__(self, *args, job=None, **kwargs):
        if job is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": job.name, "model_version": job.model_version_id, "engine": job.engine,
                "replicas": job.replicas, "accelerators_per_replica": job.accelerators_per_replica,
                "nodes_per_replica": job.nodes_per_replica, "placement": job.placement,
                "node_selector": _lines(job.node_selector), "extra_args": "\n".join(job.extra_args or []),
                "env": _lines(job.env), "max_model_len": job.max_model_len, "options": job.options or {},
            }
        super().__init__(*args, **kwargs)
        del self.fields["start"]
        names = job.secret_env_names if job is not None else []
        if names:
            self.fields["secret_env"].help_text = _("Now: %(names)s. %(rules)s") % {
                "names": ", ".join(names), "rules": self.fields["secret_env"].help_text}

    secret_env = forms.CharField(
        label=_("Secret environment"), required=False, widget=SecretTextarea(attrs={"rows": 2, "autocomplete": "off"}),
        help_text=_("NAME=value, one per line (HF_TOKEN...); stored encrypted and never shown. Filled in, it "
                    "replaces the secret entries; left empty, they are kept."))
    clear_secret_env = forms.BooleanField(label=_("Remove the secret entries"), required=False)

    def api_payload(self) -> dict:
        payload = super().api_payload()
        payload.pop("desired_state")
        if self.cleaned_data.get("clear_secret_env"):
            payload["secret_env"] = {}
        elif self.cleaned_data.get("secret_env"):
            payload["secret_env"] = _pairs(self.cleaned_data["secret_env"])
        return payload


class ScaleForm(forms.Form):
    """The replica count of ``POST jobs/{id}/scale/`` (bounds as the API's)."""

    replicas = forms.IntegerField(label=_("Replicas"), min_value=0, max_value=64)
    reason = forms.CharField(label=_("Reason (optional)"), required=False, max_length=REASON_MAX)
