"""Serializers of the jobs API (shared/API.md)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from console.core.api import SystemText
from console.core.permissions import OPERATOR, has_role
from jobs import services
from jobs.choices import DesiredState
from jobs.engines.registry import ENGINES
from jobs.engines.spec import LaunchSpec
from jobs.models import Instance, Job
from jobs.runtime import model_path
from jobs.services import REFUSED_VERSION_STATUSES
from models_registry.models import ModelVersion
from nodes import validators

# Options every engine understands: name -> (type, smallest value). An engine's own options are its
# ``job_options`` (the simulator's ttft_ms, ...), checked by the engine.
GENERIC_OPTIONS = {"python": (str, None), "served_name": (str, None), "start_timeout_s": (float, 1),
                   "stop_grace_s": (float, 0), "copy_weights": (bool, None)}
# Where an engine's message about a launch-spec field is shown: the job field the user sets.
#: What viewers read instead of a plain env value (operators and admins see the values).
MASK = "******"
SPEC_FIELD_TO_JOB_FIELD = {
    "model_path": "model_version",
    "dtype": "model_version",
    "quantization": "engine",
    "served_name": "name",
    "python": "options",
    "simulator": "options",
    "extra_args": "extra_args",
    "env": "env",
    "max_model_len": "max_model_len",
    "nnodes": "nodes_per_replica",
    "vendor": "accelerators_per_replica",
    "accelerator_ids": "accelerators_per_replica",
    "tensor_parallel": "accelerators_per_replica",
    "pipeline_parallel": "accelerators_per_replica",
}
# Stand-ins for what only placement knows (node address, port, workdir): values every engine accepts.
DRAFT_HOST, DRAFT_PORT, DRAFT_WORKDIR = "192.0.2.1", 8000, "/var/lib/boom/instances/draft"


def draft_launch_spec(engine, data: dict) -> LaunchSpec:
    """The launch spec of a replica's head member as ``data`` (a job's fields) describes it, before
    placement: the node's address, port and workdir are stand-ins; the vendor is the engine's own
    (NVIDIA first) when the job asks for accelerators, none (CPU) when it does not."""
    per_replica, nnodes = data.get("accelerators_per_replica", 1), data.get("nodes_per_replica", 1)
    vendor = None
    if per_replica:
        vendor = next((v for v in ("nvidia", "huawei") if v in engine.vendors), "nvidia")
    options = data.get("options") or {}
    version = data.get("model_version")
    multinode = nnodes > 1
    return LaunchSpec(
        model_path=model_path(version) if version is not None else "",
        served_name=options.get("served_name") or data.get("name") or "draft",
        host=DRAFT_HOST if multinode else "0.0.0.0",
        port=DRAFT_PORT,
        vendor=vendor,
        accelerator_ids=list(range(per_replica)),
        tensor_parallel=max(1, per_replica * nnodes),
        quantization=(version.quantization or None) if version is not None else None,
        dtype=(version.dtype or None) if version is not None else None,
        max_model_len=data.get("max_model_len"),
        extra_args=data.get("extra_args") if data.get("extra_args") is not None else [],
        env=data.get("env") or {},
        python=options.get("python") or "python3",
        workdir=DRAFT_WORKDIR,
        nnodes=nnodes,
        master_addr=DRAFT_HOST if multinode else None,
        master_port=DRAFT_PORT + 1 if multinode else None,
        simulator={k: v for k, v in options.items() if k not in GENERIC_OPTIONS},
    )


class JobSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=63)
    model_version = serializers.PrimaryKeyRelatedField(queryset=ModelVersion.objects.select_related("model"))
    engine = serializers.CharField(max_length=16)
    replicas = serializers.IntegerField(min_value=0, max_value=64, default=1)
    accelerators_per_replica = serializers.IntegerField(min_value=0, max_value=128, default=1)
    nodes_per_replica = serializers.IntegerField(min_value=1, max_value=16, default=1)
    node_selector = serializers.JSONField(required=False)
    extra_args = serializers.JSONField(required=False)
    env = serializers.JSONField(required=False, help_text="Plain NAME: value entries; values are masked for viewers.")
    secret_env = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, write_only=True,
        help_text="Secret NAME: value entries (HF_TOKEN...), stored encrypted and never returned; given, it replaces "
                  "the job's secret entries ({} removes them).")
    secret_env_names = serializers.ListField(child=serializers.CharField(), read_only=True,
                                             help_text="The names of the secret entries.")
    options = serializers.JSONField(required=False)
    desired_state = serializers.ChoiceField(choices=DesiredState.choices, required=False)
    engine_label = serializers.SerializerMethodField()
    model_version_name = serializers.SerializerMethodField()
    endpoints = serializers.SerializerMethodField()
    warnings = serializers.SerializerMethodField()

    state_detail_display = SystemText(source="state_detail")

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
            "secret_env",
            "secret_env_names",
            "max_model_len",
            "options",
            "desired_state",
            "state",
            "state_detail", "state_detail_display",
            "endpoints",
            "generation",
            "warnings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["state", "state_detail", "generation", "created_at", "updated_at"]

    def get_engine_label(self, obj) -> str:
        engine = ENGINES.get(obj.engine)
        return engine.label if engine else obj.engine

    def get_model_version_name(self, obj) -> str:
        return str(obj.model_version)

    def get_endpoints(self, obj) -> list[str]:
        return [i.endpoint for i in obj.instances.all() if i.state == "running" and i.endpoint]

    def get_warnings(self, obj) -> list[str]:
        status = obj.model_version.status
        engine = ENGINES.get(obj.engine)
        if (engine is None or engine.loads_weights) and status in ("registered", "verifying"):
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
        if value not in ENGINES:
            raise serializers.ValidationError(f"Unknown engine {value!r}; one of: {', '.join(sorted(ENGINES))}.")
        return value

    def validate_node_selector(self, value):
        try:
            return validators.validate_labels(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def validate_env(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object of NAME: value strings.")
        return value  # names and values are the engine's to check, in validate()

    def validate_secret_env(self, value):
        clash = sorted(set(value) & set(self.initial_data.get("env") or {})) if isinstance(
            getattr(self, "initial_data", None), dict) else []
        if clash:
            raise serializers.ValidationError(f"Also in env: {', '.join(clash)}.")
        return value

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if data.get("env") and not (request is not None and has_role(request.user, OPERATOR)):
            data["env"] = {name: MASK for name in data["env"]}  # viewers see the names only
        return data

    def update(self, instance, validated_data):
        if "secret_env" in validated_data:
            instance.set_secret_env(validated_data.pop("secret_env"))
        return super().update(instance, validated_data)

    def validate_options(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object.")
        problems = []
        for key, item in value.items():
            if key not in GENERIC_OPTIONS:
                continue  # the engine's own options are the engine's to check, in validate()
            kind, low = GENERIC_OPTIONS[key]
            if kind is bool:
                if not isinstance(item, bool):
                    problems.append(f"{key} must be true or false.")
            elif kind is str:
                if not isinstance(item, str) or not item or "\x00" in item:
                    problems.append(f"{key} must be a non-empty string.")
            elif isinstance(item, bool) or not isinstance(item, int | float):
                problems.append(f"{key} must be a number.")
            elif low is not None and item < low:
                problems.append(f"{key} must be at least {low}.")
        if problems:
            raise serializers.ValidationError(problems)
        return value

    def validate(self, attrs):
        """The job as a whole: its model version's status, then the engine's own checks of the launch
        spec the job would get (one validation path: ``Engine.validate``), as field messages."""
        fields = ("name", "engine", "model_version", "accelerators_per_replica", "nodes_per_replica", "extra_args",
                  "env", "options", "max_model_len")
        merged = {f: getattr(self.instance, f) for f in fields} if self.instance else {}
        merged.update(attrs)
        version = merged.get("model_version")
        engine = ENGINES.get(merged.get("engine"))
        if engine is None:
            return attrs
        errors: dict[str, list[str]] = {}
        version_changed = "model_version" in attrs and (self.instance is None
                                                        or attrs["model_version"] != self.instance.model_version)
        refused = REFUSED_VERSION_STATUSES.get(version.status) if version is not None else None
        if refused and version_changed and engine.loads_weights:
            errors["model_version"] = [f"{version} cannot be deployed: {refused}."]
        unknown = [key for key in merged.get("options") or {} if key not in GENERIC_OPTIONS]
        if unknown and not engine.job_options:
            known = ", ".join(sorted(GENERIC_OPTIONS))
            errors["options"] = [f"Unknown option {key!r} for the {engine.name} engine; known: {known}."
                                 for key in unknown]
        secret = attrs.get("secret_env")
        if secret is None and self.instance is not None:
            secret = dict.fromkeys(self.instance.secret_env_names, "")
        if secret:  # the engine checks the names of secret entries as it checks env's (values stay out)
            merged = {**merged, "env": {**dict.fromkeys(secret, "x"), **(merged.get("env") or {})}}
        for spec_field, messages in engine.validate(draft_launch_spec(engine, merged)).items():
            field = SPEC_FIELD_TO_JOB_FIELD.get(spec_field, "non_field_errors")
            if spec_field in ("model_path", "dtype"):
                messages = [f"model version {version}: {message}" for message in messages]
            errors.setdefault(field, []).extend(messages)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data):
        return services.create_job(validated_data, request=self.context.get("request"))


class ScaleSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(min_value=0, max_value=64)


class InstanceSerializer(serializers.ModelSerializer):
    accelerators = serializers.SerializerMethodField()
    node_name = serializers.CharField(source="node.name", read_only=True, default=None)
    endpoint = serializers.CharField(read_only=True)

    state_detail_display = SystemText(source="state_detail")
    last_exit_reason_display = SystemText(source="last_exit_reason")

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
            "cpu_cores",
            "port",
            "pid",
            "state",
            "state_detail", "state_detail_display",
            "generation",
            "restart_count",
            "last_exit_reason", "last_exit_reason_display",
            "started_at",
            "ready_at",
            "last_check_at",
            "next_attempt_at",
            "endpoint",
        ]
        read_only_fields = fields

    def get_accelerators(self, obj) -> list[int]:
        return [a.accelerator_id for a in obj.allocations.all()]
