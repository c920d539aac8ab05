"""Serializers of the model registry API (the contract in shared/API.md: ``models/``, ``model-versions/``)."""

from __future__ import annotations

import math
import re

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from console.core.api import SystemText
from models_registry import services
from models_registry.choices import ParentRelation, WeightFormat
from models_registry.inspection.config import architecture_from_dict
from models_registry.models import (
    CopyStatusChange,
    Evaluation,
    Model,
    ModelCopy,
    ModelFile,
    ModelVersion,
    Quantization,
    VersionStatusChange,
)
from models_registry.quantization import QUANTIZATIONS, normalize
from nodes.models import Node

VERSION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
QUANTIZATION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def _field_errors(exc: services.InvalidInput) -> serializers.ValidationError:
    return serializers.ValidationError(exc.errors)


class EvaluationSerializer(serializers.ModelSerializer):
    """A score on a benchmark; ``parent_score`` and ``delta`` compare with the parent version's latest
    score on the same benchmark (null without a parent or without that benchmark there)."""

    benchmark = serializers.CharField(max_length=64)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    parent_score = serializers.SerializerMethodField()
    delta = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = ["id", "benchmark", "score", "date", "notes", "parent_score", "delta"]
        read_only_fields = ["id"]

    def validate_benchmark(self, value: str) -> str:
        value = value.strip()
        if not value or any(ord(c) < 32 for c in value):
            raise serializers.ValidationError("A benchmark name such as CEval or MMLU.")
        return value

    def validate_score(self, value: float) -> float:
        if not math.isfinite(value) or abs(value) > 1e9:
            raise serializers.ValidationError("A finite number.")
        return value

    def _parent_score(self, obj: Evaluation) -> float | None:
        version = obj.version  # the prefetch sets it to the listed version (no query)
        if not version.parent_id:
            return None
        return services.latest_scores(version.parent.evaluations.all()).get(obj.benchmark)

    def get_parent_score(self, obj) -> float | None:
        return self._parent_score(obj)

    def get_delta(self, obj) -> float | None:
        parent = self._parent_score(obj)
        return None if parent is None else round(obj.score - parent, 4)


class VersionRefSerializer(serializers.ModelSerializer):
    """A short reference to a version (lineage, model listings)."""

    model_name = serializers.CharField(source="model.name", read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "model", "model_name", "version", "quantization", "format", "status", "parent",
                  "parent_relation"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    """A model version. ``source_uri``: an absolute directory path on ``node`` (default: the node named
    ``local``), ``file:///path``, ``hf://org/name[@revision]``, ``modelscope://org/name[@revision]`` or
    ``s3://bucket/key``. A directory is inspected in the background after the create (``importing``
    is true meanwhile). ``evaluations`` may be sent with the create; a PATCH of ``evaluations``
    replaces the list."""

    model = serializers.PrimaryKeyRelatedField(queryset=Model.objects.all())
    model_name = serializers.CharField(source="model.name", read_only=True)
    version = serializers.CharField(max_length=64)
    format = serializers.ChoiceField(choices=WeightFormat.choices, required=False,
                                     help_text="Detected from the files for a directory source.")
    quantization = serializers.CharField(max_length=32, required=False, allow_blank=True,
                                         help_text="Built in (bf16, w8a8, w4a16, q4_k_m...) or added by an admin; "
                                                   "detected from the files when left empty.")
    source_uri = serializers.CharField(max_length=1024)
    node = serializers.PrimaryKeyRelatedField(queryset=Node.objects.all(), required=False, allow_null=True)
    node_name = serializers.CharField(source="node.name", read_only=True, default=None)
    parent = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.select_related("parent"), required=False,
                                                allow_null=True)
    parent_relation = serializers.ChoiceField(choices=ParentRelation.choices, required=False, allow_blank=True)
    architecture = serializers.JSONField(required=False, help_text="config.json facts (layers, heads, KV heads...).")
    evaluations = EvaluationSerializer(many=True, required=False)
    aliases = serializers.SerializerMethodField()
    importing = serializers.BooleanField(source="import_pending", read_only=True)
    file_count = serializers.SerializerMethodField()
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)

    status_detail_display = SystemText(source="status_detail")

    class Meta:
        model = ModelVersion
        fields = [
            "id", "model", "model_name", "version", "format", "quantization", "dtype", "source_uri", "node",
            "node_name", "parent", "parent_relation", "parameters", "architecture", "size_bytes", "sha256",
            "memory_required_bytes", "memory_estimate", "status", "status_detail",
            "status_detail_display", "progress", "catalog",
            "importing", "inspected_at", "verified_at", "file_count", "evaluations", "aliases", "notes",
            "created_at", "updated_at",
        ]
        read_only_fields = ["size_bytes", "sha256", "memory_required_bytes", "memory_estimate", "status",
                            "status_detail", "progress", "catalog", "inspected_at", "verified_at", "created_at",
                            "updated_at"]
        extra_kwargs = {"parameters": {"min_value": 1}, "dtype": {"required": False}}
        # Uniqueness of (model, version) is checked in validate() to answer with a field message.
        validators: list = []

    def get_aliases(self, obj) -> list[str]:
        return sorted(a.name for a in obj.aliases.all())

    def get_file_count(self, obj) -> int:
        count = getattr(obj, "file_count", None)
        return count if count is not None else obj.files.count()

    # -- field validation

    def validate_version(self, value: str) -> str:
        if not VERSION_NAME_RE.match(value):
            raise serializers.ValidationError(
                "Letters, digits, '.', '_', '+' and '-' only, starting with a letter or digit (e.g. bf16, 0324-w4a16).")
        return value

    def validate_quantization(self, value: str) -> str:
        if not value:
            return ""
        try:
            return services.check_quantization(value)
        except services.InvalidInput as exc:
            raise serializers.ValidationError(exc.errors["quantization"]) from None

    def validate_source_uri(self, value: str) -> str:
        try:
            self._source = services.parse_source(value)
        except services.InvalidInput as exc:
            raise serializers.ValidationError(exc.errors["source_uri"]) from None
        return self._source.uri

    def validate_architecture(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object of config.json facts.")
        document = dict(value)
        if isinstance(document.get("architecture"), str) and "architectures" not in document:
            document["architectures"] = [document["architecture"]]
        try:
            return architecture_from_dict(document).to_dict()
        except (TypeError, ValueError) as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_evaluations(self, value):
        seen = set()
        for item in value:
            key = (item["benchmark"].lower(), item.get("date"))
            if key in seen:
                raise serializers.ValidationError(
                    f"{item['benchmark']} appears twice for the same date; send one score per benchmark and date.")
            seen.add(key)
        return value

    def validate(self, attrs):
        errors: dict[str, list[str]] = {}
        if self.instance is None:
            self._validate_create(attrs, errors)
        else:
            for name in ("model", "source_uri", "node"):
                current = getattr(self.instance, name)
                if name in attrs and attrs[name] != current:
                    errors[name] = [f"{name} cannot change after registration; point a version at other files "
                                    "with POST model-versions/{id}/import/, or register a new version."]
            if "version" in attrs and attrs["version"] != self.instance.version:
                self._check_unique(self.instance.model, attrs["version"], errors)
        parent = attrs.get("parent")
        if parent is not None:
            try:
                services.check_parent(self.instance, parent)
            except services.InvalidInput as exc:
                errors.update(exc.errors)
        relation = attrs.get("parent_relation")
        keeps_parent = self.instance is not None and self.instance.parent_id and "parent" not in attrs
        if relation and not (parent or keeps_parent):
            errors.setdefault("parent_relation", []).append("A relation needs a parent version.")
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _check_unique(self, model: Model, version: str, errors: dict) -> None:
        if ModelVersion.objects.filter(model=model, version=version).exists():
            errors.setdefault("version", []).append(f"{model.name} already has a version named {version!r}.")

    def _validate_create(self, attrs, errors) -> None:
        self._check_unique(attrs["model"], attrs["version"], errors)
        source = getattr(self, "_source", None)
        if source is None:
            return
        if source.on_node:
            if attrs.get("node") is None:
                local = Node.objects.filter(name="local").first()
                if local is None:
                    errors["node"] = ["Say on which node the directory lies (there is no node named local)."]
                attrs["node"] = local
            # The files say which format they are in; an explicit format is kept and compared.
            attrs.setdefault("format", "")
        else:
            if attrs.get("node") is not None:
                errors["node"] = [f"Only a directory path lies on a node; a {source.scheme}:// source has none."]
            if not attrs.get("quantization"):
                errors["quantization"] = [f"Required for a {source.scheme}:// source: the console cannot read its "
                                          "files to tell."]

    # -- saving

    @staticmethod
    def _evaluations(items) -> list[services.EvaluationInput]:
        return [services.EvaluationInput(benchmark=i["benchmark"], score=i["score"], date=i.get("date"),
                                         notes=i.get("notes", "")) for i in items]

    def create(self, validated_data):
        evaluations = self._evaluations(validated_data.pop("evaluations", []))
        try:
            return services.register_version(evaluations=evaluations, request=self.context.get("request"),
                                             **validated_data)
        except services.InvalidInput as exc:
            raise _field_errors(exc) from None

    def update(self, instance, validated_data):
        evaluations = validated_data.pop("evaluations", None)
        for name in ("model", "source_uri", "node"):
            validated_data.pop(name, None)
        try:
            return services.update_version(
                instance, validated_data,
                evaluations=None if evaluations is None else self._evaluations(evaluations))
        except services.InvalidInput as exc:
            raise _field_errors(exc) from None


class ModelSerializer(serializers.ModelSerializer):
    """A model (DeepSeek-R1, Qwen2.5-7B-Instruct...) with a summary of its versions and its aliases."""

    versions = VersionRefSerializer(many=True, read_only=True)
    aliases = serializers.SerializerMethodField()

    class Meta:
        model = Model
        fields = ["id", "name", "family", "publisher", "parameters", "architecture", "modality", "license",
                  "description", "versions", "aliases", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        extra_kwargs = {"parameters": {"min_value": 1}}

    def get_aliases(self, obj) -> dict[str, int]:
        return {a.name: a.version_id for a in obj.aliases.all()}

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if not value or any(ord(c) < 32 for c in value) or "/" in value:
            raise serializers.ValidationError("A model name without slashes or control characters.")
        return value


class PromoteSerializer(serializers.Serializer):
    alias = serializers.CharField(max_length=64, help_text="e.g. production, canary")


class ImportSerializer(serializers.Serializer):
    source_uri = serializers.CharField(max_length=1024, help_text="An absolute directory path or file:// URI.")
    node = serializers.PrimaryKeyRelatedField(queryset=Node.objects.all(), required=False, allow_null=True,
                                              help_text="Default: the node named local.")


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class LineageSerializer(serializers.Serializer):
    ancestors = VersionRefSerializer(many=True, help_text="Parent first, then its parent...")
    children = VersionRefSerializer(many=True)


class ModelFileSerializer(serializers.ModelSerializer):
    verified = serializers.SerializerMethodField()

    class Meta:
        model = ModelFile
        fields = ["id", "path", "size_bytes", "mtime", "sha256", "verified"]
        read_only_fields = fields

    def get_verified(self, obj) -> bool:
        return bool(obj.sha256)


class VersionStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = VersionStatusChange
        fields = ["id", "time", "from_status", "to_status", "reason", "actor"]
        read_only_fields = fields


class QuantizationSerializer(serializers.ModelSerializer):
    """A quantization an admin added; the built-in ones are listed by ``GET quantizations/known/``.
    Names are normalised (lower case, aliases resolved)."""

    name = serializers.CharField(max_length=32)

    class Meta:
        model = Quantization
        fields = ["id", "name", "bits_per_param", "description"]

    def validate_name(self, value: str) -> str:
        value = normalize(value)
        if not QUANTIZATION_NAME_RE.match(value):
            raise serializers.ValidationError("Lower-case letters, digits, '.', '_' and '-'.")
        return value

    def validate(self, attrs):
        instance = Quantization(**{**({} if self.instance is None else {
            "name": self.instance.name, "bits_per_param": self.instance.bits_per_param}), **attrs})
        try:
            instance.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from None
        if "name" in attrs:
            attrs["name"] = instance.name
            clash = Quantization.objects.filter(name=instance.name)
            if self.instance is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                raise serializers.ValidationError({"name": [f"{instance.name} exists already."]})
        return attrs


class KnownQuantizationSerializer(serializers.Serializer):
    name = serializers.CharField()
    bits_per_param = serializers.FloatField()
    description = serializers.CharField()
    builtin = serializers.BooleanField()


def known_quantizations() -> list[dict]:
    """Built-in and admin-added quantizations, for the API and the import form."""
    rows = [{"name": q.name, "bits_per_param": q.bits_per_param, "description": q.description, "builtin": True}
            for q in QUANTIZATIONS.values()]
    rows += [{"name": q.name, "bits_per_param": q.bits_per_param, "description": q.description, "builtin": False}
             for q in Quantization.objects.all()]
    return rows


class ModelCopySerializer(serializers.ModelSerializer):
    """A version's files on one node: ``status`` (``pending``, ``copying``, ``verifying``, ``ready``,
    ``failed``, ``removing``), ``progress`` (0..1) and ``bytes_done`` of ``size_bytes`` while copying,
    ``detail`` (why it failed, what it does now), ``origin`` (the directory the version was imported from)."""

    node_name = serializers.CharField(source="node.name", read_only=True)
    detail = serializers.CharField(source="status_detail", read_only=True)
    source_node = serializers.SerializerMethodField()

    class Meta:
        model = ModelCopy
        fields = ["id", "version", "node", "node_name", "path", "origin", "status", "progress", "bytes_done",
                  "size_bytes", "verified_at", "detail", "source", "source_node", "bandwidth_limit",
                  "files_skipped", "files_copied", "created_at", "updated_at"]
        read_only_fields = fields

    def get_source_node(self, obj) -> str | None:
        return obj.source.node.name if obj.source_id and obj.source else None


class CopyRequestSerializer(serializers.Serializer):
    """``POST model-versions/{id}/copies/``: ``node`` (id), ``path`` (default:
    ``<CONSOLE_MODEL_ROOT>/<model>/<version>`` on the node), ``bandwidth_limit`` (bytes/s; empty: no limit)."""

    node = serializers.PrimaryKeyRelatedField(queryset=Node.objects.all())
    path = serializers.CharField(required=False, allow_blank=True, max_length=1024)
    bandwidth_limit = serializers.IntegerField(required=False, allow_null=True, min_value=65536,
                                               max_value=1 << 40)

    def validate_path(self, value: str) -> str:
        if not value:
            return ""
        try:
            return services.copies.check_path(value)
        except services.InvalidInput as exc:
            raise serializers.ValidationError(exc.errors["path"]) from None


class CopyStatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = CopyStatusChange
        fields = ["id", "time", "from_status", "to_status", "reason", "actor"]
        read_only_fields = fields
