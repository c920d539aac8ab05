"""Serializers of the gateway's resources: API keys, routes (with nested targets), usage."""

from django.apps import apps
from django.utils import timezone
from rest_framework import serializers

from jobs.gateway import services
from jobs.gateway.models import ApiKey, Route, RouteTarget

# jobs.models imports this package (for the tables): take Job from the app registry, not by import.
Job = apps.get_model("jobs", "Job")
MODEL_NAME_MAX = 200
MAX_WEIGHT = 1_000_000


class StrictCharField(serializers.CharField):
    """A string, and only a string (DRF's CharField turns numbers into text)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never the key itself (only ``prefix``). ``key`` is in the 201 of a create only."""

    owner = serializers.CharField(source="owner.username", read_only=True)
    models = serializers.ListField(
        child=StrictCharField(max_length=MODEL_NAME_MAX, allow_blank=False, trim_whitespace=True),
        required=False, default=list, max_length=1000,
        help_text="Gateway model names the key may use (routes, served names, model@alias); empty: all.")
    rpm = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10_000_000,
                                   help_text="Requests per minute; null: no limit.")
    tpm = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10**12,
                                   help_text="Prompt + completion tokens per minute; null: no limit.")
    max_concurrency = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=100_000,
                                               help_text="Concurrent requests; null: no limit.")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "models", "expires_at", "rpm", "tpm", "max_concurrency", "owner",
                  "created_at", "last_used_at", "revoked", "revoked_at"]
        read_only_fields = ["prefix", "owner", "created_at", "last_used_at", "revoked", "revoked_at"]

    def validate_models(self, value):
        return list(dict.fromkeys(value))

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value

    def create(self, validated_data):
        request = self.context["request"]
        key, secret = services.create_key(request.user, request=request, **validated_data)
        key._secret = secret
        return key


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The key, shown once: only its digest is stored.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]

    def get_key(self, obj) -> str:
        return getattr(obj, "_secret", "")


class RouteTargetSerializer(serializers.ModelSerializer):
    job = serializers.PrimaryKeyRelatedField(queryset=Job.objects.all())
    job_name = serializers.CharField(source="job.name", read_only=True)
    weight = serializers.IntegerField(min_value=0, max_value=MAX_WEIGHT, default=1)

    class Meta:
        model = RouteTarget
        fields = ["job", "job_name", "weight"]


class RouteSerializer(serializers.ModelSerializer):
    """A gateway model name spread over jobs by weight, with a fallback job. ``targets`` is replaced
    as a whole on update."""

    targets = RouteTargetSerializer(many=True)
    fallback = serializers.PrimaryKeyRelatedField(queryset=Job.objects.all(), allow_null=True, required=False)

    class Meta:
        model = Route
        fields = ["id", "name", "targets", "fallback", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def validate_name(self, value):
        value = value.strip()
        if not value:
            raise serializers.ValidationError("May not be blank.")
        if value in services.served_names():
            raise serializers.ValidationError("A job already serves a model by this name; pick another.")
        return value

    def validate_targets(self, value):
        if not value:
            raise serializers.ValidationError("At least one target.")
        jobs = [t["job"].pk for t in value]
        if len(set(jobs)) != len(jobs):
            raise serializers.ValidationError("A job may be a target only once.")
        if not any(t["weight"] > 0 for t in value):
            raise serializers.ValidationError("At least one target needs a weight above 0.")
        return value

    def create(self, validated_data):
        return services.save_route(None, request=self.context.get("request"), **validated_data)

    def update(self, instance, validated_data):
        data = {"name": instance.name, "fallback": instance.fallback,
                "targets": [{"job": t.job, "weight": t.weight} for t in instance.targets.select_related("job")]}
        data.update(validated_data)
        return services.save_route(instance, request=self.context.get("request"), **data)


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    latency_ms_avg = serializers.FloatField(allow_null=True)
    ttft_ms_avg = serializers.FloatField(allow_null=True)


class UsagePointSerializer(UsageTotalsSerializer):
    t = serializers.DateTimeField(help_text="Start of the bucket (UTC).")


class UsageSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    step = serializers.IntegerField(help_text="Bucket width in seconds.")
    points = UsagePointSerializer(many=True)
    totals = UsageTotalsSerializer()
    errors_by_kind = serializers.DictField(child=serializers.IntegerField())


class PlaygroundKeySerializer(serializers.Serializer):
    model = serializers.CharField(max_length=MODEL_NAME_MAX)
