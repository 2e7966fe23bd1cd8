"""A create request's selection, checked strictly: a list of ids, or the list endpoint's filters."""

import django_filters
from django.utils.datastructures import MultiValueDict
from rest_framework import serializers

from .. import conf

# What a JSON id may be, by the operation's id field: `"5"` is not a ticket id, nor 5 a metric id.
ID_TYPES = {serializers.IntegerField: int, serializers.UUIDField: str}
MAX_INT_ID = 2**63 - 1  # bigint: anything larger cannot exist, and would not fit the query


def filter_data(filters, filterset_class):
    """The filter as form data: plain values, and lists only where a filter takes several."""
    data = MultiValueDict()
    for name, value in filters.items():
        values = value if isinstance(value, list) else [value]
        multiple = isinstance(filterset_class.base_filters[name], django_filters.MultipleChoiceFilter)
        scalars = all(isinstance(v, (str, int, float, bool)) for v in values)
        if not values or len(values) > 1 and not multiple or not scalars:
            expected = "a value or a list of values" if multiple else "a single value"
            raise serializers.ValidationError({"filter": {name: [f"Expected {expected}."]}})
        data.setlist(name, values)
    return data


def parse_ids(raw, definition, key="ids"):
    """Validate a list of ids: not empty, not too many, right type, no duplicates."""
    if not raw:
        raise serializers.ValidationError({key: ["The selection is empty."]})
    if len(raw) > conf.MAX_ITEMS:
        raise serializers.ValidationError({key: [f"At most {conf.MAX_ITEMS} items per operation."]})
    if definition.id_field is serializers.IntegerField and all_distinct_ints(raw):
        return raw  # the usual case, checked in C-speed passes; the loop below names what is wrong
    field, ids, seen = definition.id_field(), [], {}
    json_type = ID_TYPES.get(definition.id_field, (int, str))
    for position, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, json_type):
            expected = {int: "an integer", str: "a string"}.get(json_type, "an integer or a string")
            raise serializers.ValidationError(
                {key: [f"[{position}] {value!r} is not a valid id: expected {expected}."]}
            )
        if isinstance(value, int) and abs(value) > MAX_INT_ID:
            raise serializers.ValidationError({key: [f"[{position}] {value!r} is out of range."]})
        try:
            # A JSON int is already what an integer id field would make of it (100,000 times).
            parsed = value if type(value) is int else field.to_internal_value(value)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({key: [f"[{position}] {value!r}: {exc.detail[0]}"]}) from None
        if parsed in seen:
            raise serializers.ValidationError(
                {key: [f"[{position}] duplicate id {value!r} (first at [{seen[parsed]}])."]}
            )
        seen[parsed] = position
        ids.append(parsed)
    return ids


def all_distinct_ints(raw):
    return (
        all(type(value) is int for value in raw)
        and -MAX_INT_ID <= min(raw)
        and max(raw) <= MAX_INT_ID
        and len(set(raw)) == len(raw)
    )
