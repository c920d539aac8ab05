"""Filters of the model registry API."""

import django_filters

from models_registry.choices import VersionStatus, WeightFormat
from models_registry.models import Model, ModelVersion
from models_registry.quantization import normalize


class ModelFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    family = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = Model
        fields = ["name", "family", "publisher", "modality"]


class ModelVersionFilter(django_filters.FilterSet):
    model = django_filters.NumberFilter(field_name="model_id")
    model_name = django_filters.CharFilter(field_name="model__name", lookup_expr="iexact")
    family = django_filters.CharFilter(field_name="model__family", lookup_expr="iexact")
    quantization = django_filters.CharFilter(method="filter_quantization", help_text="bf16, w8a8, W4A16 (any case)...")
    status = django_filters.MultipleChoiceFilter(choices=VersionStatus.choices)
    format = django_filters.ChoiceFilter(choices=WeightFormat.choices)
    node = django_filters.NumberFilter(field_name="node_id")
    parent = django_filters.NumberFilter(field_name="parent_id")
    alias = django_filters.CharFilter(field_name="aliases__name", help_text="Versions holding this alias.")

    class Meta:
        model = ModelVersion
        fields = ["model", "quantization", "status", "format", "catalog", "node", "parent"]

    def filter_quantization(self, queryset, name, value):
        return queryset.filter(quantization=normalize(value))
