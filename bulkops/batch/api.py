"""POST /api/v1/batch/ (SPEC §5.4) and POST /api/v1/batch/get/ (§5.5).

The request is checked as a whole first — its shape, the limits, and each entry's method,
resource type and id — and refused with 400 naming the entry, nothing stored. An entry's
`data` is what its single endpoint validates, so a bad value fails that entry only, with
the status and message the single endpoint would answer. A replayed Idempotency-Key
answers the original batch's report, with its status code.
"""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import registry, services
from ..api.mixins import StrictBooleanField, idempotency_key
from ..api.selection import ID_TYPES, MAX_INT_ID, parse_ids
from ..api.serializers import ErrorBodySerializer
from ..api.throttling import ScopedRateThrottle
from ..models import Mode, Status
from ..operations import StrictSerializer
from . import operations as batch


def parse_id(resource, value):
    """One record id, as strict as `parse_ids`; stored as JSON (a UUID as its string)."""
    json_type = ID_TYPES.get(resource.id_field, (int, str))
    out_of_range = isinstance(value, int) and abs(value) > MAX_INT_ID
    if isinstance(value, bool) or not isinstance(value, json_type) or out_of_range:
        raise serializers.ValidationError({"id": [f"{value!r} is not a valid {resource.name} id."]})
    try:
        parsed = resource.parse_id(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({"id": exc.detail}) from None
    return parsed if isinstance(parsed, int) else str(parsed)


class BatchItemSerializer(StrictSerializer):
    """One entry of `operations`: an item of the batch, as its single endpoint would take it."""

    method = serializers.ChoiceField(choices=list(batch.METHOD_STATUS))
    resource_type = serializers.ChoiceField(choices=[])
    id = serializers.JSONField(required=False, help_text="The record's id (PATCH, DELETE)")
    data = serializers.DictField(required=False, help_text="The single endpoint's request body (POST, PATCH)")
    ref = serializers.CharField(required=False, allow_null=True, max_length=100, help_text="Echoed in the result")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_type"].choices = registry.batch_resources()

    def validate(self, attrs):
        resource, method = batch.resource_of(attrs["resource_type"]), attrs["method"]
        if method not in resource.batch_methods:
            allowed = ", ".join(resource.batch_methods)
            raise serializers.ValidationError({"method": [f"{resource.name} take {allowed}, not {method}."]})
        if method == "POST" and "id" in attrs:
            raise serializers.ValidationError({"id": ["POST creates a record: give no id."]})
        if method != "POST":
            if "id" not in attrs:
                raise serializers.ValidationError({"id": [f"{method} needs the record's id."]})
            attrs["id"] = parse_id(resource, attrs["id"])
        if method == "DELETE" and attrs.get("data"):
            raise serializers.ValidationError({"data": ["DELETE takes no data."]})
        return attrs


class BatchSerializer(StrictSerializer):
    atomic = StrictBooleanField(default=False, help_text="All or nothing, in one transaction (422 on failure)")
    operations = BatchItemSerializer(many=True, allow_empty=False, max_length=batch.MAX_OPERATIONS)


class BatchErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="NOT_FOUND, PERMISSION_DENIED, VALIDATION_ERROR, … (SPEC §3.3)")
    message = serializers.CharField()
    type = serializers.ChoiceField(choices=[*batch.ERROR_TYPES.values(), "server_error"])


class BatchResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    ref = serializers.CharField(allow_null=True)
    status = serializers.IntegerField(help_text="The HTTP status the single endpoint would have answered")
    success = serializers.BooleanField()
    data = serializers.JSONField(required=False, help_text="On success: the record (null for DELETE)")
    error = BatchErrorSerializer(required=False, help_text="On failure")


class BatchSummarySerializer(serializers.Serializer):
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    success_rate = serializers.FloatField()
    progress = serializers.FloatField()


class BatchReportSerializer(serializers.Serializer):
    batch_id = serializers.UUIDField(help_text="The bulk operation: /api/v1/bulk-operations/{batch_id}/")
    status = serializers.ChoiceField(choices=Status.choices)
    total_operations = serializers.IntegerField()
    results = BatchResultSerializer(many=True)
    summary = BatchSummarySerializer()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class BatchGetSerializer(StrictSerializer):
    resource_type = serializers.ChoiceField(choices=[])
    ids = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False, max_length=batch.MAX_GET_IDS, help_text="No id twice"
    )
    fields = serializers.ListField(
        child=serializers.CharField(), required=False, allow_empty=False, help_text="Only these fields of each record"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource_type"].choices = registry.batch_resources()

    def validate(self, attrs):
        resource = batch.resource_of(attrs["resource_type"])
        attrs["ids"] = parse_ids(attrs["ids"], resource)
        known = list(resource.serializer_class().fields)
        unknown = sorted(set(attrs.get("fields", ())) - set(known))
        if unknown:
            raise serializers.ValidationError(
                {"fields": [f"Unknown field(s): {', '.join(unknown)}; one of: {', '.join(known)}."]}
            )
        return {**attrs, "resource": resource}


class BatchGetResultSerializer(serializers.Serializer):
    id = serializers.JSONField()
    status = serializers.ChoiceField(choices=["success", "error"])
    data = serializers.JSONField(allow_null=True)
    error = BatchErrorSerializer(allow_null=True)
    status_code = serializers.IntegerField()


class BatchGetReportSerializer(serializers.Serializer):
    results = BatchGetResultSerializer(many=True)
    total_requested = serializers.IntegerField()
    total_succeeded = serializers.IntegerField()
    total_failed = serializers.IntegerField()
    processed_at = serializers.DateTimeField()


class BatchView(APIView):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "bulk"

    @extend_schema(
        operation_id="batch_create",
        request=BatchSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={
            200: BatchReportSerializer,
            400: ErrorBodySerializer,
            422: OpenApiResponse(BatchReportSerializer, description="atomic: an item failed, nothing was applied"),
            429: OpenApiResponse(ErrorBodySerializer, description="throttled, or too many active operations"),
        },
    )
    def post(self, request):
        """Up to 50 POST / PATCH / DELETE on tickets, categories and metrics, in the order given."""
        key = idempotency_key(request)
        body = BatchSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        op, _ = batch.run_batch(
            request.user,
            body.validated_data["operations"],
            atomic=body.validated_data["atomic"],
            idempotency_key=key,
            body_fingerprint=services.fingerprint({"resource": "batch", "body": request.data}),
        )
        rolled_back = op.mode == Mode.ATOMIC and op.status == Status.FAILED
        code = status.HTTP_422_UNPROCESSABLE_ENTITY if rolled_back else status.HTTP_200_OK
        return Response(BatchReportSerializer(batch.report(op)).data, status=code)


class BatchGetView(APIView):
    @extend_schema(
        operation_id="batch_get",
        request=BatchGetSerializer,
        responses={200: BatchGetReportSerializer, 400: ErrorBodySerializer},
    )
    def post(self, request):
        """Up to 100 records of one type by id, in request order; those you cannot see are 404 results."""
        body = BatchGetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attrs = body.validated_data
        report = batch.get_many(request.user, attrs["resource"], attrs["ids"], attrs.get("fields"))
        return Response(BatchGetReportSerializer(report).data)
