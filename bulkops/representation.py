"""What every interface shows of an operation: the status representation, its items and
errors, its links, and the progress and completion events (REST, pages, WebSocket, webhooks).

One place maps the operation's counters to each wire shape; below the interfaces and the
subscribers, so that each of them renders an operation the same way without importing another.
"""

from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import BulkOperation, BulkOperationItem, ItemStatus
from .wsauth import make_ticket

MAX_ERRORS = 100


class FieldSelectionMixin:
    """`?fields=a,b,c` on any GET returns only those fields (unknown names are ignored)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        wanted = self.context.get("fields")
        if wanted is None and request is not None and request.method == "GET":
            wanted = request.query_params.get("fields")
        if wanted:
            names = {name.strip() for name in wanted.split(",")} if isinstance(wanted, str) else set(wanted)
            for name in set(self.fields) - names:
                self.fields.pop(name)


def operation_links(request, op):
    """Where to find the operation; absolute when there is a request to build them from."""
    absolute = request.build_absolute_uri if request is not None else str
    links = {
        "self": absolute(reverse("bulk-operation-detail", kwargs={"pk": op.pk})),
        "items": absolute(reverse("bulk-operation-items", kwargs={"pk": op.pk})),
        "items_csv": absolute(reverse("bulk-operation-items-csv", kwargs={"pk": op.pk})),
        "page": absolute(reverse("bulkops:operation", kwargs={"op_id": op.pk})),
        "websocket": f"/ws/bulk-operations/{op.pk}/",
    }
    if request is not None:
        scheme = "wss" if request.is_secure() else "ws"
        ticket = make_ticket(request.user, op.pk)
        links["websocket"] = f"{scheme}://{request.get_host()}{links['websocket']}?ticket={ticket}"
    return links


LINKS_SCHEMA = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("self", "items", "items_csv", "page", "websocket")},
}


def item_id(item):
    """The record an item is about: its target, or the record an import's row created or matched
    (its target is the match value, blank for a new record)."""
    found = (item.result or {}).get("item_id")
    return item.target_id if found is None else str(found)


class ItemIdField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, item):
        return item_id(item)


class ItemSerializer(serializers.ModelSerializer):
    item_id = ItemIdField()

    class Meta:
        model = BulkOperationItem
        fields = ["position", "item_id", "status", "error_code", "error_message", "processed_at", "result"]


class ErrorSerializer(serializers.ModelSerializer):
    item_id = ItemIdField()

    class Meta:
        model = BulkOperationItem
        fields = ["item_id", "position", "error_code", "error_message"]


class CreatedSerializer(serializers.ModelSerializer):
    """The 202 answer to a create: where to look next."""

    operation_id = serializers.UUIDField(source="id")
    estimated_completion = serializers.DateTimeField(allow_null=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = BulkOperation
        fields = ["operation_id", "status", "total_items", "created_at", "estimated_completion", "links"]

    @extend_schema_field(LINKS_SCHEMA)
    def get_links(self, op):
        return operation_links(self.context.get("request"), op)


class SummarySerializer(FieldSelectionMixin, serializers.ModelSerializer):
    """An operation in the history list."""

    operation_id = serializers.UUIDField(source="id")
    user = serializers.IntegerField(source="user_id")
    progress_percentage = serializers.IntegerField()
    success_rate = serializers.FloatField()
    duration_seconds = serializers.FloatField(allow_null=True)
    reverts = serializers.UUIDField(source="reverts_id", allow_null=True)
    retry_of = serializers.UUIDField(source="retry_of_id", allow_null=True)
    approved_by = serializers.IntegerField(source="approved_by_id", allow_null=True)

    class Meta:
        model = BulkOperation
        fields = [
            "operation_id", "user", "resource_type", "operation_type", "mode", "execution", "dry_run", "status",
            "total_items", "processed_items", "successful_items", "unchanged_items", "created_items", "updated_items",
            "failed_items", "skipped_items", "progress_percentage", "success_rate", "created_at", "run_at", "started_at",
            "completed_at", "cancelled_at", "duration_seconds", "reverts", "retry_of", "approved_by", "approved_at",
            "max_items_per_second", "paused_at",
        ]  # fmt: skip


class OperationSerializer(SummarySerializer):
    """The status representation (SPEC §4)."""

    estimated_completion = serializers.DateTimeField(allow_null=True)
    errors = serializers.SerializerMethodField()
    links = serializers.SerializerMethodField()

    class Meta(SummarySerializer.Meta):
        fields = [
            *SummarySerializer.Meta.fields, "operation_data", "metadata", "batch_size", "estimated_completion",
            "error", "rejection_reason", "callback_url", "webhook", "errors", "links",
        ]  # fmt: skip

    @extend_schema_field(ErrorSerializer(many=True))
    def get_errors(self, op):
        failed = op.items.filter(status=ItemStatus.FAILED).order_by("position")[:MAX_ERRORS]
        return ErrorSerializer(failed, many=True).data

    @extend_schema_field(LINKS_SCHEMA)
    def get_links(self, op):
        return operation_links(self.context.get("request"), op)


class CancelledSerializer(serializers.ModelSerializer):
    operation_id = serializers.UUIDField(source="id")

    class Meta:
        model = BulkOperation
        fields = ["operation_id", "status", "processed_items", "cancelled_at"]


def progress_payload(op, current_item_id=None):
    return {
        "type": "progress_update",
        "operation_id": str(op.pk),
        "status": op.status,
        "processed_items": op.processed_items,
        "successful_items": op.successful_items,
        "unchanged_items": op.unchanged_items,
        "created_items": op.created_items,
        "updated_items": op.updated_items,
        "failed_items": op.failed_items,
        "skipped_items": op.skipped_items,
        "total_items": op.total_items,
        "progress_percentage": op.progress_percentage,
        "current_item_id": current_item_id,
        "estimated_completion": op.estimated_completion.isoformat() if op.estimated_completion else None,
        "timestamp": timezone.now().isoformat(),
    }


def status_payload(op):
    """The `status_changed` event: a change no chunk reports (a scheduled operation started,
    an approval, a rejection), with the whole status representation."""
    return {"type": "status_changed", **OperationSerializer(op, context={"request": None}).data}


def completed_payload(op):
    return {
        "type": "operation_completed",
        "operation_id": str(op.pk),
        "final_status": op.status,
        "successful_items": op.successful_items,
        "failed_items": op.failed_items,
        "skipped_items": op.skipped_items,
        "completed_at": op.completed_at.isoformat() if op.completed_at else None,
    }
