"""Registry page forms. Validation is the API serializer's, so that the pages and REST agree."""

from django import forms
from django.utils.translation import gettext_lazy as _

from models_registry.choices import Modality, ParentRelation, WeightFormat
from models_registry.models import Model, ModelVersion
from nodes.models import Node


class ModelCreateForm(forms.Form):
    """Only the name is asked: what the inspection of a version reads from the files (parameters,
    architecture) is filled in by the first import (models_registry.services.imports), and the rest
    is optional."""

    name = forms.CharField(label=_("Name"), max_length=128)
    family = forms.CharField(label=_("Family"), max_length=64, required=False)
    publisher = forms.CharField(label=_("Publisher"), max_length=64, required=False)
    parameters = forms.IntegerField(label=_("Parameters"), required=False, min_value=1,
                                    help_text=_("Leave empty: the first version inspected fills it in."))
    architecture = forms.CharField(label=_("Architecture"), max_length=128, required=False,
                                   help_text=_("As in config.json, e.g. Qwen2ForCausalLM. Leave empty: the first "
                                               "version inspected fills it in."))
    modality = forms.ChoiceField(label=_("Modality"), choices=Modality.choices, required=False,
                                 initial=Modality.TEXT)
    license = forms.CharField(label=_("License"), max_length=64, required=False)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def api_payload(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if v not in (None, "")}


class VersionCreateForm(forms.Form):
    model = forms.ModelChoiceField(label=_("Model"), queryset=Model.objects.order_by("name"), required=False)
    new_model = forms.CharField(label=_("Or a new model"), max_length=128, required=False,
                                help_text=_("Name a model to add with this version (e.g. Qwen2.5-7B-Instruct); "
                                            "its parameters and architecture come from the inspection."))
    version = forms.CharField(label=_("Version"), max_length=64, help_text=_("e.g. bf16, w8a8, 0324-w4a16"))
    source_uri = forms.CharField(label=_("Source"), max_length=1024,
                                 help_text=_("A directory on the node (/data/models/...), file:///..., "
                                             "hf://org/name@revision, modelscope://org/name or s3://bucket/key."))
    node = forms.ModelChoiceField(label=_("Node"), queryset=Node.objects.order_by("name"), required=False,
                                  help_text=_("Where the directory lies (default: local). The console inspects it."))
    quantization = forms.CharField(label=_("Quantization"), max_length=32, required=False,
                                   help_text=_("Detected from the files when left empty."),
                                   widget=forms.TextInput(attrs={"list": "quantizations"}))
    format = forms.ChoiceField(label=_("Format"), required=False,
                               choices=[("", _("detect from the files"))] + list(WeightFormat.choices))
    parent = forms.ModelChoiceField(label=_("Parent version"), required=False,
                                    queryset=ModelVersion.objects.select_related("model").order_by("model__name",
                                                                                                   "version"))
    parent_relation = forms.ChoiceField(label=_("Relation to the parent"), required=False,
                                        choices=[("", "—")] + list(ParentRelation.choices))
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self):
        data = super().clean()
        if data.get("model") is None and not (data.get("new_model") or "").strip():
            self.add_error("model", _("Choose a model, or name a new one below."))
        elif data.get("model") is not None and (data.get("new_model") or "").strip():
            self.add_error("new_model", _("Either choose a model or name a new one, not both."))
        return data

    def api_payload(self, model=None) -> dict:
        """The version's API body; ``model`` is the new model made from ``new_model`` (else the chosen one)."""
        data = self.cleaned_data
        payload = {"model": (model or data["model"]).pk, "version": data["version"], "source_uri": data["source_uri"],
                   "quantization": data["quantization"] or "", "notes": data["notes"] or "",
                   "parent_relation": data["parent_relation"] or ""}
        for name in ("node", "parent"):
            if data.get(name) is not None:
                payload[name] = data[name].pk
        if data.get("format"):
            payload["format"] = data["format"]
        return payload


class ImportForm(forms.Form):
    source_uri = forms.CharField(label=_("Directory"), max_length=1024)
    node = forms.ModelChoiceField(label=_("Node"), queryset=Node.objects.order_by("name"), required=False)


class PromoteForm(forms.Form):
    alias = forms.CharField(label=_("Alias"), max_length=64, widget=forms.TextInput(attrs={"list": "alias-names"}))


class VersionEditForm(forms.Form):
    """The fields of a version that ``PATCH model-versions/{id}/`` lets change (its model, source and node
    do not: import other files instead)."""

    version = forms.CharField(label=_("Version"), max_length=64)
    quantization = forms.CharField(label=_("Quantization"), max_length=32, required=False,
                                   widget=forms.TextInput(attrs={"list": "quantizations"}))
    format = forms.ChoiceField(label=_("Format"), required=False,
                               choices=[("", "—")] + list(WeightFormat.choices))
    parameters = forms.IntegerField(label=_("Parameters"), required=False, min_value=1)
    parent = forms.ModelChoiceField(label=_("Parent version"), required=False,
                                    queryset=ModelVersion.objects.select_related("model").order_by("model__name",
                                                                                                   "version"))
    parent_relation = forms.ChoiceField(label=_("Relation to the parent"), required=False,
                                        choices=[("", "—")] + list(ParentRelation.choices))
    notes = forms.CharField(label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    @staticmethod
    def initial_of(version: ModelVersion) -> dict:
        return {"version": version.version, "quantization": version.quantization, "format": version.format,
                "parameters": version.parameters, "parent": version.parent_id,
                "parent_relation": version.parent_relation, "notes": version.notes}

    def api_payload(self) -> dict:
        data = self.cleaned_data
        payload = {"version": data["version"], "quantization": data["quantization"] or "",
                   "parent": data["parent"].pk if data.get("parent") else None,
                   "parent_relation": data["parent_relation"] or "", "notes": data["notes"] or ""}
        if data.get("format"):
            payload["format"] = data["format"]
        if data.get("parameters"):
            payload["parameters"] = data["parameters"]
        return payload


class EvaluationForm(forms.Form):
    """One score of a version on a benchmark; an empty row is ignored."""

    benchmark = forms.CharField(label=_("Benchmark"), max_length=64, required=False)
    score = forms.FloatField(label=_("Score"), required=False)
    # ISO dates whatever the language: what <input type="date"> sends and expects.
    date = forms.DateField(label=_("Date"), required=False, input_formats=["%Y-%m-%d"],
                           widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    notes = forms.CharField(label=_("Notes"), required=False, max_length=2000)

    def clean(self):
        data = super().clean()
        if self.cleaned_data.get("DELETE"):
            return data
        if data.get("benchmark") and data.get("score") is None and "score" not in self.errors:
            self.add_error("score", _("A score is needed for a benchmark."))
        if data.get("score") is not None and not data.get("benchmark"):
            self.add_error("benchmark", _("Name the benchmark of this score."))
        return data

    def item(self) -> dict | None:
        """The evaluation as the API takes it, or None for an empty or deleted row."""
        data = self.cleaned_data
        if data.get("DELETE") or not data.get("benchmark"):
            return None
        item = {"benchmark": data["benchmark"], "score": data["score"], "notes": data.get("notes") or ""}
        if data.get("date"):
            item["date"] = data["date"].isoformat()
        return item


EvaluationFormSet = forms.formset_factory(EvaluationForm, extra=3, can_delete=True, max_num=200)
