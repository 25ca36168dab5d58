"""Query-string filters of the item list endpoint."""
import django_filters

from labeling.models import FinalSource, Item, ItemStatus
from labeling.selectors import domain_filter


class ItemFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ItemStatus.choices)
    final_source = django_filters.MultipleChoiceFilter(choices=FinalSource.choices)
    domain = django_filters.CharFilter(method="filter_domain", label="Domain path; sub-domains included.")
    language = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    labeled_after = django_filters.IsoDateTimeFilter(field_name="labeled_at", lookup_expr="gte")
    labeled_before = django_filters.IsoDateTimeFilter(field_name="labeled_at", lookup_expr="lt")

    class Meta:
        model = Item
        fields = ("status", "final_source", "domain", "language")

    def filter_domain(self, queryset, name, value):
        return queryset.filter(domain_filter(value)) if value else queryset
