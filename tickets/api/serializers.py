from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from bulkops.api.audit import AuditEventSerializer
from bulkops.api.mixins import StrictIntegerField, TextField
from bulkops.operations import StrictSerializer
from bulkops.representation import FieldSelectionMixin

from ..models import Category, Comment, Priority, Status, Ticket, TicketEvent
from ..people import visible_people


class CategorySerializer(FieldSelectionMixin, StrictSerializer, serializers.ModelSerializer):
    name = TextField(
        max_length=100,
        validators=[UniqueValidator(Category.objects.all(), message="A category with this name already exists.")],
    )

    class Meta:
        model = Category
        fields = ["id", "name", "created_at"]


class TicketSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    category_id = serializers.IntegerField(read_only=True, allow_null=True)
    requester_id = serializers.IntegerField(read_only=True)
    assignee_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Ticket
        fields = [
            "id", "external_id", "title", "description", "status", "priority", "category_id", "requester_id", "assignee_id",
            "version", "is_deleted", "deleted_at", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class VisibleUser:
    """Validator: an active user whom the serializer's `viewer` (context) may name. An id
    they may not see gets the message of one that does not exist, so ids cannot be probed."""

    requires_context = True

    def __call__(self, value, field):
        if value is not None and not visible_people(field.context.get("viewer")).filter(pk=value).exists():
            raise serializers.ValidationError(f"No active user with id {value}.")


validate_user_id = VisibleUser()


class FreeExternalId:
    """Validator: an external id no other ticket has. The ticket being changed is the
    serializer's own `ticket_id` (an element of the collection PATCH names its ticket) or the
    context's; `free_external_id`, in context, is one an import matched against every ticket
    already, under lock."""

    requires_context = True

    def __call__(self, value, field):
        if value is None or value == field.context.get("free_external_id"):
            return
        ticket_id = getattr(field.parent, "ticket_id", None) or field.context.get("ticket_id")
        if Ticket.objects.filter(external_id=value).exclude(pk=ticket_id).exists():
            raise serializers.ValidationError("A ticket with this external id exists already.")


validate_external_id = FreeExternalId()


def validate_category_id(value):
    if value is not None and not Category.objects.filter(pk=value).exists():
        raise serializers.ValidationError(f"No category with id {value}.")
    return value


class TicketChangesSerializer(StrictSerializer):
    """The fields a change may set: PATCH, the collection PATCH, batch and bulk data."""

    title = TextField(max_length=200, required=False)
    description = TextField(allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=Status.choices, required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False)
    category_id = StrictIntegerField(allow_null=True, required=False, validators=[validate_category_id])
    assignee_id = StrictIntegerField(allow_null=True, required=False, validators=[validate_user_id])
    external_id = TextField(
        max_length=255,
        allow_null=True,
        required=False,
        validators=[validate_external_id],
        help_text="Your own system's key for the ticket: unique when set (imports match on it)",
    )


class TicketPatchSerializer(TicketChangesSerializer):
    version = StrictIntegerField(min_value=1, required=False, help_text="Expected version (optimistic lock)")

    def validate(self, attrs):
        if not set(attrs) - {"version"}:
            raise serializers.ValidationError("Nothing to change: give at least one field.")
        return attrs


class TicketCreateSerializer(TicketChangesSerializer):
    title = TextField(max_length=200)
    requester_id = StrictIntegerField(required=False, validators=[validate_user_id])


class CommentSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    author = serializers.IntegerField(source="author_id", read_only=True)
    bulk_operation = serializers.UUIDField(source="bulk_operation_id", read_only=True, allow_null=True)

    class Meta:
        model = Comment
        fields = ["id", "ticket", "author", "body", "bulk_operation", "created_at"]
        read_only_fields = ["id", "ticket", "author", "bulk_operation", "created_at"]


class CommentCreateSerializer(StrictSerializer):
    body = TextField(max_length=10_000)


class TicketEventSerializer(AuditEventSerializer):
    class Meta(AuditEventSerializer.Meta):
        model = TicketEvent
