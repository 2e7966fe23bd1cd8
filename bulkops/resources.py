"""A bulk-editable resource: what the engine needs to know of one model, registered once.

A domain app subclasses `Resource` in `<app>/resources.py` and registers it with
`bulkops.registry.register_resource`; its operation types (bulkops.operations.OperationType)
name it. From the registry the engine builds the API mounts, the id aliases, the admin
actions, the page menus and the batch endpoints (docs/extending.md).
"""

from dataclasses import dataclass, field

from rest_framework import serializers

from . import errors, sql
from .errors import first_message
from .operations import OperationType
from .services import check_unmoved, json_safe, restore_payload


@dataclass
class Change:
    """One record changed in memory: the fields it held (`before`) and now holds (`after`)."""

    record: object
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.after)


def validated(serializer):
    """The validated data, or the item fails VALIDATION_ERROR with the single endpoint's message."""
    if not serializer.is_valid():
        raise errors.ValidationFailed(first_message(serializer.errors))
    return serializer.validated_data


class RevertFields(OperationType):
    """The engine's revert: put back the fields an operation set, unless one changed since."""

    name, label = "revert", "Revert"
    internal = True  # started by POST …/{id}/revert/, never named in a create request
    engine_default = True  # a resource's own "revert" replaces it (bulkops.registry)

    def apply(self, record, ctx, data):
        check_unmoved(record, data["after"], self.resource.label)
        return self.resource.change(record, ctx, data["fields"])


class Resource:
    name = None  # "tickets": the resource_type, and the URL segment of its mount
    model = None
    label = None  # "Ticket": in messages, and the URL names of its mount ("ticket-bulk-operation-…")
    id_field = serializers.IntegerField  # how a target id is parsed and validated
    id_alias = None  # "ticket_ids": what a create request may call its ids beside `ids`
    filterset_class = None  # the list endpoint's filterset: what a `filter` selection takes
    revert_type = RevertFields  # None: its operations cannot be reverted
    # The heterogeneous batch (/api/v1/batch/): the methods it may use, and a record's shape there.
    batch_methods = ()  # ("POST", "PATCH", "DELETE")
    serializer_class = None
    # Once registered: `operations`, {name: OperationType} (bulkops.registry).

    def visible(self, user, *, include_deleted=False):
        """The records `user` may see (soft-deleted ones too when `include_deleted`)."""
        return self.model._default_manager.all()

    def lock(self, user, ids, *, include_deleted=False):
        """{pk: record} for the visible records among `ids`, locked in pk order (no deadlock)."""
        qs = self.visible(user, include_deleted=include_deleted).select_for_update(of=("self",))
        return {record.pk: record for record in qs.filter(pk__any=ids).order_by("pk")}

    def change(self, record, ctx, values):
        """Set `values` on `record` in memory; the fields that differed make the Change."""
        before = {name: getattr(record, name) for name, value in values.items() if getattr(record, name) != value}
        for name in before:
            setattr(record, name, values[name])
        return Change(record, before, {name: values[name] for name in before})

    def save(self, changes):
        """Write the changed records of a chunk in one UPDATE."""
        changed = [change for change in changes if change.changed]
        names = sorted({name for change in changed for name in change.after})
        sql.update_rows(self.model, [change.record for change in changed], names)

    def describe(self, change):
        """(before, result) stored on the item: `before` is what revert restores."""
        return json_safe(change.before) or None, {"changed": change.changed, "after": json_safe(change.after)}

    def revert_payload(self, before, result):
        """What undoes one item, from its `before` and `result`; None when there is nothing to."""
        if not before or not result.get("changed"):
            return None
        return {"fields": before, "after": result["after"]}

    # --- the batch verbs ------------------------------------------------------------------

    def create(self, ctx, data):
        """POST: validate, check, create; return the representation."""
        raise NotImplementedError

    def update(self, record, ctx, data):
        """PATCH of a locked record: validate, check, change, write; return the representation."""
        raise NotImplementedError

    def delete(self, record, ctx):
        """DELETE of a locked record."""
        raise NotImplementedError

    def parse_id(self, value):
        return self.id_field().to_internal_value(value)

    def represent(self, records, fields=None, *, many=False):
        return self.serializer_class(records, many=many, context={"fields": fields}).data


class VersionedResource(Resource):
    """A model whose services bump a `version` on each change: an item's result keeps it, and
    its revert restores the fields unless one changed since (bulkops.services.restore_payload)."""

    def describe(self, change):
        result = {"changed": change.changed, "version": change.record.version}
        if change.after:
            result["after"] = json_safe(change.after)
        return json_safe(change.before) or None, result

    def revert_payload(self, before, result):
        return restore_payload(before, result)
