"""Benchmarks API (shared/API.md ``benchmarks/``): serving benchmark runs, cancel, export.

Operators create and cancel runs; viewers read and export them; admins delete finished ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import django_filters
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, renderers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from console.core import audit, outbound
from console.core.api import ERRORS, SystemText
from jobs.benchmarks import export, generator, services
from jobs.choices import BenchmarkApi, PromptSource
from jobs.models import DEFAULT_BENCHMARK_CONCURRENCY, BenchmarkRun, Instance, Job

MAX_LEVELS = 16
MAX_CONCURRENCY = 1024
MAX_DATASET_BYTES = 64 << 20


def own_endpoints() -> list[str]:
    """The endpoints of this console's instances (any job, any state that has a port)."""
    instances = Instance.objects.filter(node__isnull=False, port__isnull=False, member=0).select_related("node")
    return [i.endpoint for i in instances if i.endpoint]


class BenchmarkRunSerializer(serializers.ModelSerializer):
    job = serializers.PrimaryKeyRelatedField(
        queryset=Job.objects.select_related("model_version__model"), required=False, allow_null=True)
    endpoint_url = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                         help_text="An OpenAI-compatible base URL, e.g. http://10.0.0.5:8000/v1 "
                                                   "(a URL without a path gets /v1). Give this or job.")
    concurrency = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENCY), min_length=1, max_length=MAX_LEVELS,
        required=False, help_text=f"Concurrency levels, run in this order; default {DEFAULT_BENCHMARK_CONCURRENCY}.")
    requests_per_level = serializers.IntegerField(min_value=1, max_value=1_000_000, required=False, allow_null=True,
                                                  help_text="Requests sent at each level (default: 4 × concurrency, "
                                                            "at least 16). Or give duration_s.")
    duration_s = serializers.FloatField(min_value=1, max_value=3600, required=False, allow_null=True,
                                        help_text="Seconds each level sends requests (those in flight then finish).")
    input_tokens = serializers.IntegerField(min_value=1, max_value=131072, default=256)
    output_tokens = serializers.IntegerField(min_value=1, max_value=32768, default=128)
    request_timeout_s = serializers.FloatField(min_value=1, max_value=3600, default=120.0)
    api = serializers.ChoiceField(choices=BenchmarkApi.choices, default=BenchmarkApi.CHAT)
    prompt_source = serializers.ChoiceField(choices=PromptSource.choices, default=PromptSource.SYNTHETIC)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    results = serializers.JSONField(read_only=True,
                                    help_text="One object per finished level (docs/benchmarks-serving.md).")
    endpoints = serializers.JSONField(read_only=True)

    status_detail_display = SystemText(source="status_detail")

    class Meta:
        model = BenchmarkRun
        fields = [
            "id", "label", "job", "job_name", "model_version_name", "engine", "endpoint_url", "endpoints", "model",
            "api", "concurrency", "requests_per_level", "duration_s", "prompt_source", "input_tokens",
            "output_tokens", "dataset_path", "request_timeout_s", "status", "status_detail",
            "status_detail_display", "progress",
            "current_concurrency", "results", "cancel_requested", "created_by", "created_at", "started_at",
            "finished_at",
        ]
        read_only_fields = ["job_name", "model_version_name", "engine", "status", "status_detail", "progress",
                            "current_concurrency", "cancel_requested", "created_at", "started_at", "finished_at"]

    def validate_concurrency(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Each concurrency level may appear once.")
        return value

    def validate_endpoint_url(self, value: str) -> str:
        value = value.strip()
        if not value:
            return ""
        try:
            URLValidator(schemes=["http", "https"])(value)
        except DjangoValidationError:
            raise serializers.ValidationError("An http:// or https:// URL, e.g. http://10.0.0.5:8000/v1.") from None
        value = value.rstrip("/")
        if value.count("/") == 2:  # scheme://host[:port] without a path
            value += "/v1"
        try:  # the outbound policy (docs/security.md): the console's own instances, or an allowed network
            outbound.check_benchmark_url(value, own_endpoints())
        except outbound.OutboundRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_dataset_path(self, value: str) -> str:
        if not value:
            return ""
        root = Path(settings.CONSOLE_BENCHMARK_DATASET_DIR)
        path = Path(value) if Path(value).is_absolute() else root / value
        path = path.resolve()
        if not path.is_relative_to(root):
            raise serializers.ValidationError(f"Dataset files must lie in {root}.")
        if not path.is_file():
            raise serializers.ValidationError(f"No such file: {path}.")
        if path.stat().st_size > MAX_DATASET_BYTES:
            raise serializers.ValidationError(f"The file is larger than {MAX_DATASET_BYTES >> 20} MiB.")
        return str(path)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        job, url = attrs.get("job"), attrs.get("endpoint_url", "")
        if job and url:
            errors["endpoint_url"] = ["Give a job or an endpoint URL, not both."]
        elif not job and not url:
            errors["job"] = ["Give a job or an endpoint URL."]
        if attrs.get("requests_per_level") and attrs.get("duration_s"):
            errors["duration_s"] = ["Give requests per level or a duration, not both."]
        attrs.setdefault("concurrency", list(DEFAULT_BENCHMARK_CONCURRENCY))
        if attrs.get("prompt_source") == PromptSource.DATASET:
            path = attrs.get("dataset_path")
            if not path:
                errors["dataset_path"] = ["A dataset file is required with the dataset prompt source."]
            else:
                try:
                    generator.dataset_prompts(Path(path).read_text(encoding="utf-8").splitlines(),
                                              attrs.get("output_tokens", 128))
                except (OSError, UnicodeError) as exc:
                    errors["dataset_path"] = [f"Cannot read the file: {exc}"]
                except ValueError as exc:
                    errors["dataset_path"] = [f"Not a prompt dataset (JSONL): {exc}"]
        elif attrs.get("dataset_path"):
            errors["dataset_path"] = ["Only with the dataset prompt source."]
        if job and job.max_model_len and attrs.get("prompt_source") != PromptSource.DATASET:
            if attrs["input_tokens"] + attrs["output_tokens"] > job.max_model_len:
                errors["input_tokens"] = [f"Input plus output tokens exceed the job's max model length "
                                          f"({job.max_model_len})."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> BenchmarkRun:
        return services.create_benchmark(validated_data, request=self.context.get("request"))


class CSVRenderer(renderers.BaseRenderer):
    """``?format=csv`` on the export action: one row per level (jobs.benchmarks.export)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "rows" in data:
            return export.to_csv(data["rows"])
        return export.to_csv([])


class BenchmarkFilter(django_filters.FilterSet):
    job = django_filters.NumberFilter(field_name="job_id")

    class Meta:
        model = BenchmarkRun
        fields = ["job", "status", "engine"]


class BenchmarkRunViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                          mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Serving benchmarks: concurrency sweeps with tokens/s, TTFT, TPOT and errors per level.

    ``POST`` answers 202 with the queued run; poll it for ``progress`` and ``results``.
    """

    queryset = BenchmarkRun.objects.select_related("created_by").order_by("-created_at", "-id")
    serializer_class = BenchmarkRunSerializer
    filterset_class = BenchmarkFilter
    operator_actions = ("create", "cancel")
    ordering_fields = ["created_at", "status", "label"]

    @extend_schema(responses={202: BenchmarkRunSerializer, **ERRORS})
    def create(self, request, *args, **kwargs):
        """Queue a run. 409 when the job is not running; 400 for bad levels, URLs or datasets."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = serializer.save()
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance):
        services.refuse_delete_while_active(instance)
        pk, text = instance.pk, str(instance)
        instance.delete()
        audit.record("delete", None, request=self.request, object_type="benchmarkrun", object_id=pk,
                     detail={"name": text})

    @extend_schema(request=None, responses={202: BenchmarkRunSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel: a queued run at once, a running one within a second or two (finished levels are
        kept). 409 when the run already ended."""
        run = services.cancel_benchmark(self.get_object(), request=request)
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("format", str, enum=["json", "csv"], description="json (default) or csv")],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, CSVRenderer])
    def export(self, request, pk=None):
        """The run's settings and one row per level, as JSON or CSV (a download)."""
        run = self.get_object()
        fmt = request.accepted_renderer.format
        data = export.as_json(run) if fmt != "csv" else {"rows": export.rows(run)}
        filename = f"benchmark-{run.pk}.{'csv' if fmt == 'csv' else 'json'}"
        return Response(data, headers={"Content-Disposition": f'attachment; filename="{filename}"'})
