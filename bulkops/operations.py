"""The base class of every operation type; subclasses live in <app>/operations.py.

A subclass names its resource (a registered bulkops.resources.Resource) and its name, the
serializer of its `operation_data`, and how to change one record; finding, locking, saving
and describing the records are the resource's, and the engine (`runner`) does the rest.
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
    data: dict | None = None  # the operation's operation_data, for types whose items carry a payload


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


class OperationType:
    resource = None  # its Resource subclass; once registered, the resource's instance
    name = None  # "update_status"
    label = None  # what pages and the admin call it
    data_serializer = EmptyData
    include_deleted = False  # whether soft-deleted records are targets (restore)
    internal = False  # started only by its own endpoint (revert, collection PATCH, /api/v1/batch/)
    creates = False  # an item that matches no record may create one (imports): `apply(None, …)`
    destructive = False  # pages confirm it with a warning and the list of records (delete)
    value_names = {}  # {data field: ids ⇒ {id: name}}: how pages name the ids it stores (bulkops.labels)

    @property
    def id_field(self):
        """How a target id is parsed and validated: the resource's."""
        return self.resource.id_field

    @property
    def filterset_class(self):
        """The list endpoint's filterset, for `filter` selections: the resource's."""
        return self.resource.filterset_class

    def allowed(self, user):
        """Whether `user` may run it at all: pages offer only these (each item is still checked)."""
        return True

    def visible(self, user):
        """The queryset a `filter` selection is resolved against."""
        return self.resource.visible(user, include_deleted=self.include_deleted)

    def lock(self, user, ids):
        """{pk: record} for the visible records among `ids`, locked in pk order."""
        return self.resource.lock(user, ids, include_deleted=self.include_deleted)

    def changeable(self, records):
        """Those of `records` this operation can change: what a page's confirmation counts and
        starts on (the API's snapshot keeps every id asked for, and reports each)."""
        return records

    def apply(self, record, ctx, data):
        """Validate and apply one change in memory; raise errors.ItemError to refuse it.
        By default: set the fields of `data` (the resource's `change`)."""
        return self.resource.change(record, ctx, data)

    def save(self, changes):
        """Write the changes of a chunk in a few statements."""
        self.resource.save(changes)

    def describe(self, change):
        """(before, result) stored on the item: `before` is what revert restores."""
        return self.resource.describe(change)

    def parse_id(self, target_id):
        return self.id_parser.to_internal_value(target_id)

    @cached_property
    def id_parser(self):
        """One field for every id: building a DRF field per item costs more than parsing."""
        return self.id_field()
