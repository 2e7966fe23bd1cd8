"""What the operations API reads: create, revert and retry bodies, selections, error bodies."""

import json

from rest_framework import serializers

from .. import conf, errors, followups, pacing, registry, webhooks
from ..models import Execution, Mode
from ..operations import StrictSerializer
from ..services import Request, Selection
from .mixins import RunAtField, StrictBooleanField, StrictIntegerField, TextField
from .selection import filter_data, parse_ids

MAX_METADATA_BYTES = 16 * 1024  # as compact UTF-8 JSON


# The per-item codes a retry may pick (operation-level refusals never fail an item).
ITEM_ERROR_CODES = [
    code
    for code in errors.HTTP_STATUS
    if code not in (errors.TOO_MANY_ACTIVE_OPERATIONS, errors.IDEMPOTENCY_KEY_REUSED)
]


class OptionsSerializer(StrictSerializer):
    """What any request that starts an operation may add: why (audit reason), whom to call,
    and when to start."""

    metadata = serializers.DictField(required=False, default=dict)
    callback_url = serializers.URLField(
        required=False, allow_blank=True, max_length=500, help_text="POSTed the final status when the operation ends"
    )
    run_at = RunAtField()

    def validate_metadata(self, value):
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"At most {MAX_METADATA_BYTES} bytes as JSON; this is {size}.")
        description = value.get("description", "")
        if not isinstance(description, str) or len(description) > 1000:
            raise serializers.ValidationError("description must be a string of at most 1,000 characters.")
        return value

    def validate_callback_url(self, value):
        if value:
            try:
                webhooks.check_url(value)
            except webhooks.UnsafeURL as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value


class CreateOperationSerializer(OptionsSerializer):
    """A bulk operation request; `validate` turns it into a services.Request."""

    resource_type = serializers.ChoiceField(choices=[], required=False)
    ids = serializers.ListField(required=False, allow_empty=True)  # elements checked by parse_ids
    filter = serializers.DictField(required=False, help_text='The list endpoint\'s filters, e.g. {"status": "open"}')
    operation_type = serializers.CharField()
    operation_data = serializers.DictField(required=False, default=dict)
    mode = serializers.ChoiceField(choices=Mode.choices, default=Mode.PARTIAL)
    execution = serializers.ChoiceField(choices=Execution.choices, default=Execution.ASYNC)
    batch_size = StrictIntegerField(
        min_value=1,
        max_value=conf.MAX_BATCH_SIZE,
        required=False,
        help_text="Items per chunk; without it the engine sizes each chunk to keep its row locks short",
    )
    dry_run = StrictBooleanField(default=False)
    max_items_per_second = StrictIntegerField(
        min_value=1,
        max_value=pacing.MAX_RATE,
        required=False,
        allow_null=True,
        help_text="Throttle: at most this many items per second for the whole operation (async, partial mode)",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_type"].choices = public_resources()

    def get_fields(self):
        """Each registered resource's alias for `ids` (`ticket_ids`), right after it."""
        fields = super().get_fields()
        aliases = {
            # elements checked by parse_ids
            alias: fields.pop(alias, None) or serializers.ListField(required=False, allow_empty=True)
            for alias in self.id_aliases()
        }
        ordered = {}
        for name, field in fields.items():
            ordered[name] = field
            if name == "ids":
                ordered.update(aliases)
        return ordered

    def id_aliases(self):
        return registry.id_aliases()

    def validate(self, attrs):
        resource = self.resource_of(attrs)
        definition = registry.get(resource, attrs["operation_type"])
        if definition is None or is_internal(definition):
            raise serializers.ValidationError(
                {"operation_type": [f"Unknown operation for {resource}; one of: {', '.join(public_names(resource))}."]}
            )
        # The viewer: a data serializer may name users, and must not reveal those the caller cannot see.
        viewer = self.context["request"].user
        data = definition.data_serializer(data=attrs.get("operation_data", {}), context={"viewer": viewer})
        if not data.is_valid():
            raise serializers.ValidationError({"operation_data": data.errors})
        check_throttle(attrs)
        ids = self.selection(attrs, resource, definition)
        if attrs["execution"] == Execution.SYNC and attrs.get("run_at"):
            raise serializers.ValidationError(
                {"run_at": ["A sync operation runs inside the request; use execution async to schedule it."]}
            )
        if attrs["execution"] == Execution.SYNC and len(ids) > conf.MAX_SYNC_ITEMS:
            raise serializers.ValidationError(
                {"execution": [f"sync takes at most {conf.MAX_SYNC_ITEMS} items; use async."]}
            )
        return Request(
            resource_type=resource,
            operation_type=definition.name,
            ids=ids,
            operation_data=dict(data.validated_data),
            metadata=attrs.get("metadata", {}),
            mode=attrs["mode"],
            execution=attrs["execution"],
            batch_size=attrs.get("batch_size"),
            dry_run=attrs["dry_run"],
            callback_url=attrs.get("callback_url", ""),
            run_at=attrs.get("run_at"),
            max_items_per_second=attrs.get("max_items_per_second"),
        )

    def resource_of(self, attrs):
        fixed = self.context.get("resource_type")
        given = attrs.get("resource_type")
        if fixed and given and given != fixed:
            raise serializers.ValidationError({"resource_type": [f"This endpoint is for {fixed}."]})
        if not (fixed or given):
            raise serializers.ValidationError({"resource_type": ["This field is required."]})
        return fixed or given

    def selection(self, attrs, resource, definition):
        aliases = registry.id_aliases()
        given = [key for key in ("ids", *aliases, "filter") if key in attrs]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": [f"Give exactly one selection: ids (or {' / '.join(aliases)}) or filter."]}
            )
        key = given[0]
        if key == "filter":
            return self.resolve_filter(attrs["filter"], definition)
        if aliases.get(key, resource) != resource:
            raise serializers.ValidationError({key: [f"{key} selects {aliases[key]}, not {resource}."]})
        return parse_ids(attrs[key], definition, key)

    def resolve_filter(self, filters, definition):
        """The filter, as a query resolved inside PostgreSQL when the items are written."""
        filterset_class = definition.filterset_class
        if filterset_class is None:
            raise serializers.ValidationError({"filter": [f"{definition.resource.name} take no filter; give ids."]})
        unknown = sorted(set(filters) - set(filterset_class.base_filters))
        if unknown:
            raise serializers.ValidationError({"filter": [f"Unknown filter(s): {', '.join(unknown)}."]})
        filterset = filterset_class(
            data=filter_data(filters, filterset_class), queryset=definition.visible(self.context["request"].user)
        )
        if not filterset.is_valid():
            raise serializers.ValidationError({"filter": filterset.errors})
        limit = conf.MAX_ITEMS
        count = filterset.qs.order_by()[: limit + 1].count()
        if not count:
            raise serializers.ValidationError({"filter": ["The filter matches nothing."]})
        if count > limit:
            raise serializers.ValidationError({"filter": [f"The filter matches more than {limit} records."]})
        return Selection(filterset.qs, count)


def check_throttle(attrs):
    """A throttle paces chunks in worker jobs: a sync operation runs inside its request and an
    atomic one in a single transaction, where waiting would only hold the request or the locks."""
    if attrs.get("max_items_per_second") is None:
        return
    if attrs["execution"] == Execution.SYNC or attrs["mode"] == Mode.ATOMIC:
        raise serializers.ValidationError({"max_items_per_second": ["Only async partial operations can be throttled."]})


class RateSerializer(StrictSerializer):
    """`PATCH …/{id}/`: change a running operation's throttle (null: no throttle; absent: unchanged)."""

    max_items_per_second = StrictIntegerField(
        min_value=1, max_value=pacing.MAX_RATE, required=False, allow_null=True, help_text="null removes the throttle"
    )


def is_internal(definition):
    """Operations only the engine starts (revert): never named in a create request."""
    return getattr(definition, "internal", False)


def public_names(resource):
    return [name for name in registry.names(resource) if not is_internal(registry.get(resource, name))]


def public_resources():
    return [resource for resource in registry.resources() if public_names(resource)]


class StatsSerializer(serializers.Serializer):
    total_operations = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField())
    items_processed = serializers.IntegerField()
    success_rate = serializers.FloatField()
    mean_duration_seconds = serializers.FloatField(allow_null=True)


class FollowUpSerializer(OptionsSerializer):
    """The optional body of revert and retry: the new operation's reason and callback."""


class RevertFollowUpSerializer(FollowUpSerializer):
    dry_run = serializers.BooleanField(
        default=False, help_text="Preview: report what would be restored and what conflicts, change nothing"
    )


class RetryFollowUpSerializer(FollowUpSerializer):
    codes = serializers.ListField(
        child=serializers.ChoiceField(choices=ITEM_ERROR_CODES),
        required=False,
        allow_empty=False,
        help_text="Retry the items that failed with these codes; default: those a retry can change "
        f"({', '.join(followups.RETRYABLE)})",
    )


class RejectSerializer(StrictSerializer):
    reason = TextField(max_length=1000, help_text="Why: shown to the creator with the operation")


class WebhookSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="HMAC-SHA256 key of the X-Bulkops-Signature header")
    signature_header = serializers.CharField()


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.JSONField(allow_null=True)


class ErrorBodySerializer(serializers.Serializer):
    """Every API error: {"error": {"code", "message", "details"}}."""

    error = ErrorDetailSerializer()
