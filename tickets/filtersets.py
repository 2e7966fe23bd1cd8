from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .models import Category, Priority, Status, Ticket


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(django_filters.NumberFilter):
    """A whole-number id: `1.5` is refused rather than rounded to 1."""

    field_class = forms.IntegerField


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned into UTC here: PostgreSQL refuses UTC offsets past ±15:59, and
    a time at the edge of year 1 or 9999 has no UTC equivalent; both are bad input, not a crash."""

    def to_python(self, value):
        value = super().to_python(value)
        try:
            return value and value.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Enter a time between the years 1 and 9999 in UTC.", code="invalid") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class TicketFilterSet(django_filters.FilterSet):
    """Shared by the list endpoint, bulk `filter` selections and the /tickets/ page."""

    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    category = django_filters.ModelChoiceFilter(queryset=Category.objects.all())
    assignee = IdFilter(field_name="assignee_id")
    requester = IdFilter(field_name="requester_id")
    search = django_filters.CharFilter(method="filter_search", label="Search")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    # Only staff (and restore) see deleted tickets; this narrows what they see.
    is_deleted = django_filters.BooleanFilter()

    class Meta:
        model = Ticket
        fields = [
            "status",
            "priority",
            "category",
            "assignee",
            "requester",
            "search",
            "created_after",
            "created_before",
            "is_deleted",
        ]

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(title__icontains=value) | Q(description__icontains=value))
