"""The base class of every bulk operation; subclasses live in <app>/operations.py.

A subclass names its resource and operation, the serializer of its `operation_data`, and
how to lock, change and save the records of one chunk; the engine (`runner`) does the rest.
"""

from dataclasses import dataclass
from functools import cached_property

from rest_framework import serializers


@dataclass
class Context:
    """Who changes, and why: stored on every audit row a change writes."""

    actor: object
    operation_id: object = None
    reason: str = ""


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, naming them: a typo must not pass silently."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class EmptyData(StrictSerializer):
    """For operations that take no data: `{}` only."""


class Operation:
    resource = None  # "tickets", "metrics"
    name = None  # "update_status"
    label = None  # what pages and the admin call it
    data_serializer = EmptyData
    id_field = serializers.IntegerField  # how a target id is parsed and validated
    filterset_class = None  # the list endpoint's filterset, for `filter` selections
    include_deleted = False  # whether soft-deleted records are targets (restore)
    internal = False  # started only by its own endpoint (revert, collection PATCH, batch)
    destructive = False  # pages confirm it with a warning and the list of records (delete)
    value_names = {}  # {data field: ids ⇒ {id: name}}: how pages name the ids it stores (bulkops.labels)

    def allowed(self, user):
        """Whether `user` may run it at all: pages offer only these (each item is still checked)."""
        return True

    def visible(self, user):
        """The queryset a `filter` selection is resolved against."""
        raise NotImplementedError

    def lock(self, user, ids):
        """{pk: record} for the visible records among `ids`, locked in pk order."""
        raise NotImplementedError

    def changeable(self, records):
        """Those of `records` this operation can change: what a page's confirmation counts and
        starts on (the API's snapshot keeps every id asked for, and reports each)."""
        return records

    def apply(self, record, ctx, data):
        """Validate and apply one change in memory; raise errors.ItemError to refuse it."""
        raise NotImplementedError

    def save(self, changes):
        """Write the changes of a chunk in a few statements."""
        raise NotImplementedError

    def describe(self, change):
        """(before, result) stored on the item: `before` is what revert restores."""
        return change.before or None, {"changed": change.changed}

    def parse_id(self, target_id):
        return self.id_parser.to_internal_value(target_id)

    @cached_property
    def id_parser(self):
        """One field for every id: building a DRF field per item costs more than parsing."""
        return self.id_field()
