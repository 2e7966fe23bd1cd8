from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from .models import BulkOperation, ItemStatus, Status


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


class BulkOperationFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices)
    operation_type = django_filters.CharFilter()
    resource_type = django_filters.CharFilter()
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    user = django_filters.NumberFilter(field_name="user_id", method="filter_user")

    class Meta:
        model = BulkOperation
        fields = ["status", "operation_type", "resource_type", "created_after", "created_before", "user"]

    def filter_user(self, queryset, name, value):
        # Only staff see other users' operations; for everyone else the queryset is theirs already.
        return queryset.filter(user_id=value)


class ItemFilterSet(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ItemStatus.choices)
    error_code = django_filters.CharFilter()
