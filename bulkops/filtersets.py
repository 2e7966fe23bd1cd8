"""Filtersets: strict ones for the domain apps' selections, and the operation history's."""

from datetime import UTC

import django_filters
from django import forms
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models.constants import LOOKUP_SEP
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


class StrictFilterForm(forms.Form):
    """A selection means what it says: a filter that is given but cannot be used — empty, or a
    value its field reads as "nothing", like `is_deleted=maybe` — is an error naming it, never
    "no filter", which would select every visible record."""

    def clean(self):
        cleaned = super().clean()
        for name in self.fields:
            if name not in self.data:
                continue
            given = given_values(self.data, name)
            if not given:  # said once, plainly, whatever the field would have said about ""
                self.errors.pop(name, None)
                self.add_error(name, "Empty: give a value, or leave this filter out.")
            elif name not in self.errors and cleaned.get(name) in self.fields[name].empty_values:
                self.add_error(name, f"“{given[0]}” is not a value this filter can use.")
        return cleaned


def given_values(data, name):
    """The non-blank values given for `name` (form data is a QueryDict or MultiValueDict)."""
    return [str(value) for value in data.getlist(name) if str(value).strip()]


class StrictFilterSet(django_filters.FilterSet):
    """The base of the filtersets that select records (list endpoints, bulk `filter`, pages)."""

    @classmethod
    def get_filters(cls):
        """django-filter makes every multiple-choice filter `distinct`, for the sake of to-many
        relations; on a record's own column it only costs a sort of every selected row (a
        million-ticket `filter` selection, the list's count), since no row can repeat."""
        filters = super().get_filters()
        for each in filters.values():
            if each.distinct and not repeats_rows(cls._meta.model, each.field_name):
                each.distinct = False
        return filters

    def get_form_class(self):
        form = super().get_form_class()
        return type(form.__name__, (StrictFilterForm, form), {})


def repeats_rows(model, path):
    """Whether filtering `model` on the field `path` (`a__b`) joins a relation along which one
    record can match several rows; also when the path names no field (it cannot be told)."""
    for name in path.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            return True
        if field.many_to_many or field.one_to_many:
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def given_filters(params):
    """A page's own GET filter form submits every field, the unfilled ones empty
    (`?status=&priority=`): there an empty field means "not filtered", so it is left out."""
    data = params.copy()
    for name in list(data):
        values = given_values(data, name)
        if values:
            data.setlist(name, values)
        else:
            del data[name]
    return data


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
