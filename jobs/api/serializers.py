"""Serializers of the jobs API (shared/API.md)."""

import re

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from jobs.choices import DesiredState
from jobs.models import Instance, Job
from models_registry.models import ModelVersion
from nodes import validators

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables the console sets itself; a job may not override them.
RESERVED_ENV = {
    "CUDA_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "ASCEND_VISIBLE_DEVICES",
    "BOOM_INSTANCE",
    "BOOM_GENERATION",
}
# Options every engine understands: name -> (type, smallest value). Simulator options come from its engine module.
GENERIC_OPTIONS = {"python": (str, None), "served_name": (str, None), "start_timeout_s": (float, 1),
                   "stop_grace_s": (float, 0)}
# Model-version statuses a new job may not use (documented in docs/jobs.md).
REFUSED_VERSION_STATUSES = {"failed": "its files failed verification", "deprecated": "it is deprecated"}


class JobSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63)
    model_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.select_related("model"))
    engine = serializers.CharField(max_length=16)
    replicas = serializers.IntegerField(min_value=0, max_value=64, default=1)
    accelerators_per_replica = serializers.IntegerField(min_value=0, max_value=128, default=1)
    nodes_per_replica = serializers.IntegerField(min_value=1, max_value=16, default=1)
    node_selector = serializers.JSONField(required=False)
    extra_args = serializers.JSONField(required=False)
    env = serializers.JSONField(required=False)
    options = serializers.JSONField(required=False)
    desired_state = serializers.ChoiceField(choices=DesiredState.choices, required=False)
    engine_label = serializers.SerializerMethodField()
    model_version_name = serializers.SerializerMethodField()
    endpoints = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "model_version",
            "model_version_name",
            "engine",
            "engine_label",
            "replicas",
            "accelerators_per_replica",
            "nodes_per_replica",
            "node_selector",
            "placement",
            "extra_args",
            "env",
            "max_model_len",
            "options",
            "desired_state",
            "state",
            "state_detail",
            "endpoints",
            "generation",
            "warnings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["state", "state_detail", "generation", "created_at", "updated_at"]

    def get_engine_label(self, obj) -> str:
        from jobs.engines.registry import ENGINES

        engine = ENGINES.get(obj.engine)
        return engine.label if engine else obj.engine

    def get_model_version_name(self, obj) -> str:
        return str(obj.model_version)

    def get_endpoints(self, obj) -> list[str]:
        return [i.endpoint for i in obj.instances.all() if i.state == "running" and i.endpoint]

    def get_warnings(self, obj) -> list[str]:
        status = obj.model_version.status
        if obj.engine != "simulator" and status in ("registered", "verifying"):
            return [f"model version {obj.model_version} is {status}, not verified: its files were not checked"]
        return []

    def validate_name(self, value):
        try:
            validators.validate_name(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        clash = Job.objects.filter(name=value)
        if self.context.get("preview"):
            return value
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError("A job with this name already exists.")
        return value

    def validate_engine(self, value):
        from jobs.engines.registry import ENGINES

        if value not in ENGINES:
            raise serializers.ValidationError(f"Unknown engine {value!r}; one of: {', '.join(sorted(ENGINES))}.")
        return value

    def validate_node_selector(self, value):
        try:
            return validators.validate_labels(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def validate_extra_args(self, value):
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise serializers.ValidationError("A list of strings, one argv token each.")
        return value  # the engine's own rules are checked in validate(), once the engine is known

    def validate_env(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object of NAME: value strings.")
        for key, item in value.items():
            if not ENV_NAME_RE.match(key):
                raise serializers.ValidationError(f"Invalid variable name {key!r}.")
            if key in RESERVED_ENV:
                raise serializers.ValidationError(f"{key} is set by the console from the allocated accelerators.")
            if not isinstance(item, str) or "\x00" in item:
                raise serializers.ValidationError(f"The value of {key} must be a string without NUL bytes.")
        return value

    def validate_options(self, value):
        from jobs.engines.simulator import SIMULATOR_OPTIONS

        if not isinstance(value, dict):
            raise serializers.ValidationError("An object.")
        problems = []
        for key, item in value.items():
            if key in GENERIC_OPTIONS:
                kind, low = GENERIC_OPTIONS[key]
            elif key in SIMULATOR_OPTIONS:
                _flag, kind, low, _high = SIMULATOR_OPTIONS[key]
            else:
                known = sorted(set(GENERIC_OPTIONS) | set(SIMULATOR_OPTIONS))
                problems.append(f"Unknown option {key!r}; known: {', '.join(known)}.")
                continue
            if kind is str:
                if not isinstance(item, str) or not item or "\x00" in item:
                    problems.append(f"{key} must be a non-empty string.")
            elif isinstance(item, bool) or not isinstance(item, int | float) or (kind is int and item != int(item)):
                problems.append(f"{key} must be {'an integer' if kind is int else 'a number'}.")
            elif low is not None and item < low:
                problems.append(f"{key} must be at least {low}.")
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate(self, attrs):
        from jobs.engines.registry import ENGINES

        merged = (
            {
                f: getattr(self.instance, f)
                for f in ("engine", "model_version", "accelerators_per_replica", "nodes_per_replica", "extra_args")
            }
            if self.instance
            else {}
        )
        merged.update(attrs)
        version = merged.get("model_version")
        engine = ENGINES.get(merged.get("engine"))
        errors = {}
        version_changed = "model_version" in attrs and (self.instance is None
                                                        or attrs["model_version"] != self.instance.model_version)
        if version is not None and engine is not None and engine.name != "simulator":
            refused = REFUSED_VERSION_STATUSES.get(version.status)
            if refused and version_changed:
                errors["model_version"] = [f"{version} cannot be deployed: {refused}."]
            if (
                engine.supported_quantizations is not None
                and version.quantization
                and version.quantization not in engine.supported_quantizations
            ):
                errors["engine"] = [f"The {engine.name} engine does not serve {version.quantization} weights."]
        if engine is not None:
            problems = engine.validate_extra_args(merged.get("extra_args") or [])
            if problems:
                errors["extra_args"] = problems
            reserved = sorted(set(merged.get("env") or {}) & set(engine.controlled_env))
            if reserved:
                errors["env"] = [f"{', '.join(reserved)} is set by the console for the {engine.name} engine."]
            per_replica = merged.get("accelerators_per_replica", 1)
            if per_replica == 0 and "cpu" not in engine.vendors:
                errors["accelerators_per_replica"] = [f"The {engine.name} engine needs at least one accelerator."]
            if merged.get("nodes_per_replica", 1) > 1 and not engine.supports_multinode:
                errors["nodes_per_replica"] = [f"The {engine.name} engine cannot span nodes."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data):
        request = self.context.get("request")
        if request is not None and request.user.is_authenticated:
            validated_data["created_by"] = request.user
        return super().create(validated_data)


class ScaleSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=0, max_value=64)


class InstanceSerializer(serializers.ModelSerializer):
    accelerators = serializers.SerializerMethodField()
    node_name = serializers.CharField(source="node.name", read_only=True, default=None)
    endpoint = serializers.CharField(read_only=True)

    class Meta:
        model = Instance
        fields = [
            "id",
            "job",
            "replica",
            "member",
            "node",
            "node_name",
            "accelerators",
            "port",
            "pid",
            "state",
            "state_detail",
            "generation",
            "restart_count",
            "last_exit_reason",
            "started_at",
            "ready_at",
            "last_check_at",
            "next_attempt_at",
            "endpoint",
        ]
        read_only_fields = fields

    def get_accelerators(self, obj) -> list[int]:
        return [a.accelerator_id for a in obj.allocations.all()]
