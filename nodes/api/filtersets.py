"""Filters of the inventory API."""

import django_filters

from nodes.choices import AcceleratorKind, Health, NodeStatus, Transport, Vendor
from nodes.models import Accelerator, Node
from nodes.validators import LABEL_KEY_RE


class NodeFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=NodeStatus.choices)
    transport = django_filters.ChoiceFilter(choices=Transport.choices)
    label = django_filters.CharFilter(method="filter_label", help_text="key=value")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Node
        fields = ["status", "transport", "credential"]

    def filter_label(self, queryset, name, value):
        key, _, label_value = value.partition("=")
        if not LABEL_KEY_RE.match(key) or "__" in key:
            return queryset.none()
        return queryset.filter(**{f"labels__{key}": label_value})


class AcceleratorFilter(django_filters.FilterSet):
    node = django_filters.NumberFilter(field_name="node_id")
    node_name = django_filters.CharFilter(field_name="node__name")
    vendor = django_filters.ChoiceFilter(choices=Vendor.choices)
    kind = django_filters.ChoiceFilter(choices=AcceleratorKind.choices)
    health = django_filters.MultipleChoiceFilter(choices=Health.choices)
    present = django_filters.BooleanFilter()

    class Meta:
        model = Accelerator
        fields = ["node", "vendor", "kind", "health", "present"]
