import django_filters
from django.db.models import Q

from bulkops.filtersets import IdFilter, StrictFilterSet

from .models import Metric, Verification


class MetricFilterSet(StrictFilterSet):
    verification = django_filters.MultipleChoiceFilter(choices=Verification.choices)
    owner = IdFilter(field_name="owner_id")
    search = django_filters.CharFilter(method="filter_search", label="Search")

    class Meta:
        model = Metric
        fields = ["verification", "owner", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))
