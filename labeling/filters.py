"""Query-string filters of the item list endpoint."""
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from labeling.models import FinalSource, Item, ItemStatus
from labeling.selectors import domain_filter
from labeling.storable import DATETIME_SCHEMA, datetime_problem, to_utc


class StorableIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime both databases can compare with: PostgreSQL refuses UTC offsets beyond +-15:59 (a
    500) where SQLite converts them, and a time near year 1 or 9999 may not convert to UTC at all."""

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if value is None:
            return None
        problem = datetime_problem(value)
        if problem:
            raise forms.ValidationError(
                f"{problem}; give a UTC offset from -15:59 to +15:59, as in 2026-01-01T00:00:00Z")
        return to_utc(value)


@extend_schema_field(DATETIME_SCHEMA)
class StorableIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = StorableIsoDateTimeField


class ItemFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ItemStatus.choices)
    final_source = django_filters.MultipleChoiceFilter(choices=FinalSource.choices)
    domain = django_filters.CharFilter(method="filter_domain", label="Domain path; sub-domains included.")
    language = django_filters.CharFilter()
    created_after = StorableIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StorableIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    labeled_after = StorableIsoDateTimeFilter(field_name="labeled_at", lookup_expr="gte")
    labeled_before = StorableIsoDateTimeFilter(field_name="labeled_at", lookup_expr="lt")

    class Meta:
        model = Item
        fields = ("status", "final_source", "domain", "language")

    def filter_domain(self, queryset, name, value):
        return queryset.filter(domain_filter(value)) if value else queryset
