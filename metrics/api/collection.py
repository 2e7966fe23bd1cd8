"""PUT /api/v1/metrics/: set the verification of many metrics (SPEC §5.3, seed 000).

The updates become a synchronous bulk operation of `set_verification_each`
(metrics/operations.py) in partial mode, processed in chunks of `batch_size`: recorded in
the history, each metric changed exactly as PATCH /api/v1/metrics/{id}/ would.

What makes the request unusable is refused as a whole — 400 naming the index, nothing
stored: not an object with `updates`, too many updates, a batch_size out of 1–1,000, an
update that is not an object, has no valid `id`, names a metric twice, or has keys besides
`id` and `verification`. A bad verification value fails that update only
(VALIDATION_ERROR), as do a metric the user cannot see or that does not exist
(NOT_FOUND) and one they may only view (PERMISSION_DENIED); the others go on. No updates
change nothing and record nothing: zero counts and `"operation_id": null`.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response

from bulkops import conf
from bulkops import services as bulk
from bulkops.api.collection import CollectionThrottleMixin, UniqueIdsListSerializer, unsuccessful_items
from bulkops.api.mixins import StrictIntegerField
from bulkops.api.serializers import ErrorBodySerializer
from bulkops.counters import counters
from bulkops.models import Execution, ItemStatus, Mode
from bulkops.operations import StrictSerializer

from ..models import Metric, Verification
from .serializers import MetricSerializer
from .views import MetricViewSet


@extend_schema_field(serializers.ChoiceField(choices=Verification.choices))
class UncheckedVerification(serializers.Field):
    """Taken as given: the value is the item's data, checked when the item is applied, so
    that a bad one fails its update only."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


class VerificationUpdateSerializer(StrictSerializer):
    id = serializers.UUIDField()
    verification = UncheckedVerification(help_text="A bad value fails this update only (VALIDATION_ERROR)")

    class Meta:
        list_serializer_class = UniqueIdsListSerializer


class VerificationUpdatesSerializer(StrictSerializer):
    updates = VerificationUpdateSerializer(many=True, max_length=conf.MAX_SYNC_ITEMS)
    batch_size = StrictIntegerField(
        min_value=1,
        max_value=conf.MAX_BATCH_SIZE,
        required=False,
        help_text="Items per chunk; without it the engine sizes the chunks",
    )


class FailedUpdateSerializer(serializers.Serializer):
    metric_id = serializers.CharField()
    error = serializers.CharField()
    error_code = serializers.CharField(help_text="NOT_FOUND, PERMISSION_DENIED, VALIDATION_ERROR, CONFLICT, …")


class VerificationReportSerializer(serializers.Serializer):
    updated_metrics = MetricSerializer(many=True)
    failed_updates = FailedUpdateSerializer(many=True)
    total_processed = serializers.IntegerField()
    success_count = serializers.IntegerField()
    failure_count = serializers.IntegerField()
    operation_id = serializers.UUIDField(allow_null=True, help_text="null for no updates: nothing was recorded")


# No updates change nothing, so they record no operation either (SPEC §16), as an empty
# PATCH /api/v1/tickets/ does.
NOTHING_CHANGED = {
    "updated_metrics": [],
    "failed_updates": [],
    "total_processed": 0,
    "success_count": 0,
    "failure_count": 0,
    "operation_id": None,
}


def set_verifications(user, updates, batch_size):
    """Run the updates as one synchronous, partial bulk operation; returns the operation."""
    request = bulk.Request(
        resource_type="metrics",
        operation_type="set_verification_each",
        ids=[update["id"] for update in updates],
        payloads=[{"verification": update["verification"]} for update in updates],
        mode=Mode.PARTIAL,
        execution=Execution.SYNC,
        batch_size=batch_size,
    )
    op, _ = bulk.start_operation(user, request)
    return op


def report(op, user, ids):
    """The metrics as they are now (as `user`, who made `op` of `ids`, sees them), and the
    failures, both in request order."""
    others = unsuccessful_items(op)
    left = {item.target_id for item in others}
    succeeded = [target for target in map(str, ids) if target not in left]
    metrics = {str(pk): metric for pk, metric in Metric.objects.visible_to(user).in_bulk(succeeded).items()}
    failed = [item for item in others if item.status == ItemStatus.FAILED]
    return {
        "updated_metrics": [metrics[pk] for pk in succeeded],
        "failed_updates": [
            {"metric_id": i.target_id, "error": i.error_message, "error_code": i.error_code} for i in failed
        ],
        **counters(op, "collection_put"),
        "operation_id": op.pk,
    }


class MetricCollectionViewSet(CollectionThrottleMixin, MetricViewSet):
    """The metric endpoints, and PUT on the collection."""

    throttle_scope = "metrics_bulk"

    @extend_schema(
        operation_id="metrics_bulk_update",
        request=VerificationUpdatesSerializer,
        responses={
            200: VerificationReportSerializer,
            400: ErrorBodySerializer,
            429: OpenApiResponse(
                ErrorBodySerializer, description="throttled (per user), or too many active operations"
            ),
        },
    )
    def bulk_update(self, request):
        """Set the verification of up to 1,000 metrics; each update succeeds or fails on its own."""
        body = VerificationUpdatesSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        updates = body.validated_data["updates"]
        if not updates:
            return Response(VerificationReportSerializer(NOTHING_CHANGED).data)
        op = set_verifications(request.user, updates, body.validated_data.get("batch_size"))
        ids = [update["id"] for update in updates]
        return Response(VerificationReportSerializer(report(op, request.user, ids)).data)
