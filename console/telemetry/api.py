"""REST views of the telemetry series (shared/API.md "Series"): ``metrics/series/`` lists them,
``metrics/query/`` returns points. Thin: console.telemetry.series validates and reads."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from console.telemetry import series as telemetry

ERRORS = {401: OpenApiResponse(description="No credentials"), 403: OpenApiResponse(description="Role too weak")}


class SeriesDefSerializer(serializers.Serializer):
    name = serializers.CharField()
    scope = serializers.ChoiceField(choices=telemetry.SCOPES)
    unit = serializers.CharField()
    description = serializers.CharField()


class SeriesPointsSerializer(serializers.Serializer):
    labels = serializers.DictField(help_text="Which entity: ids (integers) and names of node, accelerator, "
                                              "job or instance.")
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[t, value] pairs, t in epoch seconds, ascending.")


class QueryResultSerializer(serializers.Serializer):
    series = serializers.CharField()
    scope = serializers.CharField()
    unit = serializers.CharField()
    start = serializers.FloatField(help_text="Epoch seconds.")
    end = serializers.FloatField(help_text="Epoch seconds.")
    step = serializers.FloatField(allow_null=True, help_text="Bucket width in seconds; null: as sampled.")
    resolution = serializers.ChoiceField(choices=["raw", "1m"])
    results = SeriesPointsSerializer(many=True)


_ID = OpenApiTypes.INT
QUERY_PARAMETERS = [
    OpenApiParameter("series", OpenApiTypes.STR, required=True, description="A name from metrics/series/."),
    OpenApiParameter("node", _ID, description="Node id (node, accelerator and instance series)."),
    OpenApiParameter("accelerator", _ID, description="Accelerator id (accelerator series)."),
    OpenApiParameter("job", _ID, description="Job id (job and instance series)."),
    OpenApiParameter("instance", _ID, description="Instance id (instance series)."),
    OpenApiParameter("start", OpenApiTypes.STR, description="ISO 8601 or epoch seconds; default end - 1 h."),
    OpenApiParameter("end", OpenApiTypes.STR, description="ISO 8601 or epoch seconds; default now."),
    OpenApiParameter("step", OpenApiTypes.NUMBER,
                     description="Bucket width in seconds (at least 1; 60 or more on the minute rollups). "
                                 "Default: chosen for about 1200 points per entity."),
]


class MetricsViewSet(viewsets.GenericViewSet):
    """Telemetry series of nodes, accelerators, jobs and instances (viewer role)."""

    pagination_class = None
    serializer_class = SeriesDefSerializer

    def get_queryset(self):  # no model behind these views; keeps DRF's permission checks content
        return None

    @extend_schema(
        parameters=[OpenApiParameter("scope", OpenApiTypes.STR, enum=list(telemetry.SCOPES),
                                     description="Only the series of this scope.")],
        responses={200: inline_serializer("SeriesList", {
            "count": serializers.IntegerField(), "next": serializers.CharField(allow_null=True),
            "previous": serializers.CharField(allow_null=True), "results": SeriesDefSerializer(many=True)}),
            400: OpenApiResponse(description="Unknown scope"), **ERRORS})
    @action(detail=False, methods=["get"])
    def series(self, request):
        """Every series: name, scope, unit and description."""
        scope = request.query_params.get("scope") or None
        if scope is not None and scope not in telemetry.SCOPES:
            raise ValidationError({"scope": [f"must be one of {', '.join(telemetry.SCOPES)}"]})
        rows = [definition.as_dict() for definition in telemetry.series_list(scope)]
        return Response({"count": len(rows), "next": None, "previous": None, "results": rows})

    @extend_schema(parameters=QUERY_PARAMETERS,
                   responses={200: QueryResultSerializer,
                              400: OpenApiResponse(description="Unknown series, a filter that does not apply, "
                                                               "an inverted or too long range, too many points"),
                              **ERRORS})
    @action(detail=False, methods=["get"])
    def query(self, request):
        """Points of one series between start and end, one entry per entity."""
        params = request.query_params
        if not params.get("series"):
            raise ValidationError({"series": ["This parameter is required."]})
        try:
            plan, results = telemetry.query_with_plan(
                params["series"], node=params.get("node"), accelerator=params.get("accelerator"),
                job=params.get("job"), instance=params.get("instance"), start=params.get("start"),
                end=params.get("end"), step=params.get("step"))
        except telemetry.SeriesError as exc:
            raise ValidationError(exc.errors) from None
        definition = plan.series
        return Response({
            "series": definition.name, "scope": definition.scope, "unit": definition.unit,
            "start": plan.start_ms / 1000, "end": plan.end_ms / 1000, "step": plan.step_s,
            "resolution": plan.resolution,
            "results": [{"labels": labels, "points": [[t, v] for t, v in points]} for labels, points in results],
        })


router = DefaultRouter()
router.register("metrics", MetricsViewSet, basename="metrics")
