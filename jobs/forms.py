"""The create-job form. Validation is the API serializer's, so that the page and REST agree."""

from django import forms
from django.utils.translation import gettext_lazy as _

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

        def pairs(text):
            out = {}
            for line in (text or "").splitlines():
                if line.strip():
                    key, _sep, value = line.strip().partition("=")
                    out[key.strip()] = value.strip()
            return out

        return {
            "name": data["name"], "model_version": data["model_version"].pk, "engine": data["engine"],
            "replicas": data["replicas"], "accelerators_per_replica": data["accelerators_per_replica"],
            "nodes_per_replica": data["nodes_per_replica"], "placement": data["placement"],
            "node_selector": pairs(data["node_selector"]),
            "extra_args": [line for line in (data["extra_args"] or "").splitlines() if line.strip()],
            "env": pairs(data["env"]), "max_model_len": data["max_model_len"], "options": data["options"] or {},
            "desired_state": "running" if data["start"] else "stopped",
        }
