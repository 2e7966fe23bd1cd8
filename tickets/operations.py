"""The ticket operation types. Each calls the same service as the single endpoint; finding,
locking, saving and describing tickets are the resource's (tickets/resources.py)."""

from rest_framework import serializers

from bulkops import errors
from bulkops.api.mixins import StrictIntegerField, TextField
from bulkops.imports import HIDDEN, ImportType, valid
from bulkops.operations import OperationType, StrictSerializer
from bulkops.registry import register

from . import services
from .api.serializers import (
    TicketChangesSerializer,
    TicketCreateSerializer,
    TicketPatchSerializer,
    validate_category_id,
    validate_user_id,
)
from .labels import VALUE_NAMES
from .models import Priority, Status, Ticket, is_agent
from .resources import Tickets


class TicketOperationType(OperationType):
    resource = Tickets
    value_names = VALUE_NAMES

    def allowed(self, user):
        """Changing status, priority, category or assignee is for agents (tickets.services)."""
        return is_agent(user)

    def changeable(self, tickets):
        return tickets.filter(is_deleted=False)  # staff see deleted ones too; only restore takes them


class StatusData(StrictSerializer):
    status = serializers.ChoiceField(choices=Status.choices)


class CommentData(StrictSerializer):
    body = TextField(max_length=10_000)


class AssignData(StrictSerializer):
    assignee_id = StrictIntegerField(allow_null=True, validators=[validate_user_id])


class PriorityData(StrictSerializer):
    priority = serializers.ChoiceField(choices=Priority.choices)


class CategoryData(StrictSerializer):
    category_id = StrictIntegerField(allow_null=True, validators=[validate_category_id])


class FieldsData(TicketChangesSerializer):
    def get_fields(self):
        fields = super().get_fields()
        return {name: fields[name] for name in ("status", "priority", "category_id", "assignee_id")}

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give at least one of status, priority, category_id, assignee_id.")
        return attrs


@register
class UpdateStatus(TicketOperationType):
    name, label, data_serializer = "update_status", "Change status", StatusData


@register
class Assign(TicketOperationType):
    name, label, data_serializer = "assign", "Assign", AssignData


@register
class SetPriority(TicketOperationType):
    name, label, data_serializer = "set_priority", "Set priority", PriorityData


@register
class SetCategory(TicketOperationType):
    name, label, data_serializer = "set_category", "Set category", CategoryData


@register
class UpdateFields(TicketOperationType):
    name, label, data_serializer = "update_fields", "Update fields", FieldsData


@register
class AddComment(TicketOperationType):
    name, label, data_serializer = "add_comment", "Add comment", CommentData

    def allowed(self, user):
        return True  # a requester comments on their own tickets

    def apply(self, ticket, ctx, data):
        return services.apply_comment(ticket, ctx, data["body"])


@register
class Delete(TicketOperationType):
    name, label, destructive = "delete", "Delete", True

    def allowed(self, user):
        return services.can_delete(user)

    def apply(self, ticket, ctx, data):
        return services.apply_delete(ticket, ctx)


@register
class Restore(TicketOperationType):
    name, label, include_deleted = "restore", "Restore", True

    def allowed(self, user):
        return services.can_delete(user)

    def changeable(self, tickets):
        return tickets.filter(is_deleted=True)

    def apply(self, ticket, ctx, data):
        return services.apply_restore(ticket, ctx)


@register
class Revert(TicketOperationType):
    """Undo another operation, item by item; each item's payload (Tickets.revert_payload) says what."""

    name, label, include_deleted = "revert", "Revert", True
    internal = True  # started by POST …/{id}/revert/, never named in a create request

    def apply(self, ticket, ctx, data):
        if "delete_created" in data:  # a ticket an import created: soft-deleted, if unchanged since
            return services.apply_delete(ticket, ctx, expected_version=data["version"])
        if "remove_comment" in data:
            return services.apply_remove_comment(ticket, ctx, data["remove_comment"])
        if "add_comment" in data:
            return services.apply_comment(ticket, ctx, data["add_comment"])
        return services.apply_revert(
            ticket, ctx, data["fields"], expected_version=data["version"], after=data.get("after")
        )

    def save(self, changes):
        services.save_with_removals(changes)


@register
class Patch(TicketOperationType):
    """Any editable fields, with an optional expected `version` (CONFLICT when stale): the
    collection PATCH (tickets/api/collection.py), where each item carries its own data."""

    name, label, data_serializer = "patch", "Edit", TicketPatchSerializer
    internal = True  # started by PATCH /api/v1/tickets/

    def apply(self, ticket, ctx, data):
        changes = dict(data)
        version = changes.pop("version", None)
        return services.apply_update(ticket, ctx, changes, expected_version=version)


@register
class Import(ImportType):
    """Rows of a file (bulkops.imports): each creates a ticket as POST /api/v1/tickets/ does, or
    changes the one it matches (`id` or `external_id`) as PATCH does."""

    resource = Tickets
    columns = (
        "id", "external_id", "title", "description", "status", "priority", "category_id", "assignee_id",
        "requester_id",
    )  # fmt: skip
    match_fields = ("id", "external_id")
    integer_columns = ("id", "category_id", "assignee_id", "requester_id")

    def find(self, user, field, values):
        if field == "id":
            values = [int(value) for value in values if value.isdigit()]
        found = {str(key): ticket for key, ticket in services.lock_by(user, field, values).items()}
        hidden = Ticket.objects.filter(**{f"{field}__in": values}).exclude(pk__in=[t.pk for t in found.values()])
        found.update({str(key): HIDDEN for key in hidden.values_list(field, flat=True)})
        return found

    def create_row(self, ctx, row):
        # A row keyed by external_id comes here only once `find` found no ticket with it.
        free = row.get("external_id") if ctx.data["match_on"] == "external_id" else None
        data = valid(TicketCreateSerializer(data=row, context={"viewer": ctx.actor, "free_external_id": free}))
        return services.apply_create(ctx, data)

    def update_row(self, ticket, ctx, row):
        row = dict(row)
        if row.pop("requester_id", ticket.requester_id) != ticket.requester_id:
            raise errors.ValidationFailed(
                "requester_id: a ticket's requester cannot be changed", details={"requester_id": ["Cannot be changed."]}
            )
        if not row:  # the row names its ticket and nothing else
            return services.apply_update(ticket, ctx, {})
        # Its own external id (what a row matched on) is no other ticket's: no query per row.
        context = {"viewer": ctx.actor, "ticket_id": ticket.pk, "free_external_id": ticket.external_id}
        changes = dict(valid(TicketPatchSerializer(data=row, context=context)))
        version = changes.pop("version", None)
        return services.apply_update(ticket, ctx, changes, expected_version=version)
