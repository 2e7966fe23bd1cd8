"""The bulk operations API (`/api/v1/bulk-operations/`): create, status, list, cancel, pause, resume,
throttle, items, revert, retry."""

import uuid

from django.db.models import Avg, Count, F, Sum
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import control, errors, followups, imports, services, webhooks
from ..filtersets import BulkOperationFilterSet, ItemFilterSet
from ..models import BulkOperation, Execution, Mode, Status
from ..representation import (
    CancelledSerializer,
    CreatedSerializer,
    ItemSerializer,
    OperationSerializer,
    SummarySerializer,
)
from .mixins import idempotency_key
from .pagination import ItemPagination, OperationPagination
from .schema import OPERATION_OR_REPLAY, OperationSchema
from .serializers import (
    CreateOperationSerializer,
    ErrorBodySerializer,
    RateSerializer,
    RejectSerializer,
    RetryFollowUpSerializer,
    RevertFollowUpSerializer,
    StatsSerializer,
    WebhookSecretSerializer,
)
from .streaming import csv_pieces, streamed
from .throttling import ScopedRateThrottle

# `changed`: true, or false for an item that succeeded without changing anything; empty otherwise.
CSV_COLUMNS = ["position", "item_id", "status", "error_code", "error_message", "processed_at", "changed"]
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Same key and body within 24 h: the original operation (200); another body: 422",
)
STARTED_RESPONSES = {
    202: CreatedSerializer,
    200: OpenApiResponse(CreatedSerializer, description="a replayed Idempotency-Key"),
    404: ErrorBodySerializer,
    409: OpenApiResponse(ErrorBodySerializer, description="not finished, or nothing to do"),
    422: OpenApiResponse(ErrorBodySerializer, description="Idempotency-Key reused with another body"),
    429: OpenApiResponse(ErrorBodySerializer, description="throttled, or too many active operations"),
}


class BulkOperationViewSet(viewsets.GenericViewSet):
    """Bulk operations: create, status, cancel, history, items (+CSV), stats.

    Mounted three times: for any resource, and with the resource fixed by the URL.
    """

    resource_type = None  # set per mount
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    pagination_class = OperationPagination
    filterset_class = BulkOperationFilterSet
    serializer_class = OperationSerializer
    throttle_scope = "bulk"
    schema = OperationSchema()

    def get_throttles(self):
        return [ScopedRateThrottle()] if self.action in {"create", "revert", "retry"} else []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return BulkOperation.objects.none()
        qs = BulkOperation.objects.visible_to(self.request.user).order_by("-created_at")
        return qs.filter(resource_type=self.resource_type) if self.resource_type else qs

    def operation_id(self):
        try:
            return uuid.UUID(self.kwargs["pk"])
        except ValueError:
            raise errors.NotFound("Bulk operation not found") from None

    def get_object(self):
        op = self.get_queryset().filter(pk=self.operation_id()).first()
        if op is None:
            raise errors.NotFound("Bulk operation not found")
        return op

    def respond_created(self, op, created):
        """202 for a new async operation; a sync one answers with its final status (200, or 422
        for an atomic rollback); a replayed Idempotency-Key answers 200 with what it answered."""
        if op.execution == Execution.SYNC:
            rolled_back = created and op.mode == Mode.ATOMIC and op.status == Status.FAILED
            code = status.HTTP_422_UNPROCESSABLE_ENTITY if rolled_back else status.HTTP_200_OK
            return Response(OperationSerializer(op, context=self.get_serializer_context()).data, status=code)
        body = CreatedSerializer(op, context=self.get_serializer_context()).data
        response = Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        response["Location"] = body["links"]["self"]
        return response

    @extend_schema(
        parameters=[IDEMPOTENCY_HEADER],
        responses={
            **STARTED_RESPONSES,
            200: OpenApiResponse(
                OPERATION_OR_REPLAY, description="sync execution: the final status; or a replayed Idempotency-Key"
            ),
            400: ErrorBodySerializer,
            422: OpenApiResponse(
                OperationSerializer, description="sync atomic operation rolled back, or Idempotency-Key reused"
            ),
        },
    )
    def create(self, request):
        key = idempotency_key(request)
        data = CreateOperationSerializer(
            data=request.data, context={"request": request, "resource_type": self.resource_type}
        )
        data.is_valid(raise_exception=True)
        bulk_request = data.validated_data
        fingerprint = services.fingerprint({"resource": bulk_request.resource_type, "body": request.data})
        op, created = services.start_operation(
            request.user, bulk_request, idempotency_key=key, body_fingerprint=fingerprint
        )
        return self.respond_created(op, created)

    def follow_up(self, request, start, kind, body):
        """Revert or retry: a new operation made from this one; `body` reads the request's options."""
        key = idempotency_key(request)
        data = body(data=request.data)
        data.is_valid(raise_exception=True)
        op_id = self.get_object().pk
        fingerprint = services.fingerprint({kind: str(op_id), "body": request.data})
        op, created = start(
            request.user, op_id, **data.validated_data, idempotency_key=key, body_fingerprint=fingerprint
        )
        return self.respond_created(op, created)

    @extend_schema(
        request=RevertFollowUpSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses=STARTED_RESPONSES,
        description="A new async operation that restores what this one changed, on every record whose restored "
        "fields did not change since (others fail CONFLICT); `dry_run` previews it. 409 when it has not "
        "finished, was a dry run, changed nothing, or was already reverted.",
    )
    @action(detail=True, methods=["post"])
    def revert(self, request, pk=None):
        return self.follow_up(request, followups.revert_operation, "revert", RevertFollowUpSerializer)

    @extend_schema(
        request=RetryFollowUpSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses=STARTED_RESPONSES,
        description="A new operation over the items that failed with one of `codes` (default: the codes a retry "
        "can change), with the same type and data. 409 when it has not finished or no item matches.",
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        return self.follow_up(request, followups.retry_operation, "retry", RetryFollowUpSerializer)

    @extend_schema(responses={200: WebhookSecretSerializer})
    @action(
        detail=False,
        methods=["get"],
        url_path="webhook-secret",
        url_name="webhook-secret",
        filterset_class=None,
        pagination_class=None,
    )
    def webhook_secret(self, request):
        """The key your completion webhooks are signed with: verify X-Bulkops-Signature with it."""
        body = {"secret": webhooks.secret_for(request.user), "signature_header": webhooks.SIGNATURE_HEADER}
        return Response(WebhookSecretSerializer(body).data)

    @extend_schema(responses={200: SummarySerializer(many=True)})
    def list(self, request):
        qs = self.filter_queryset(self.get_queryset())
        if "user" in request.query_params and not request.user.is_staff:
            qs = qs.none() if request.query_params["user"] != str(request.user.pk) else qs
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(
            SummarySerializer(page, many=True, context=self.get_serializer_context()).data
        )

    @extend_schema(responses={200: OperationSerializer})
    def retrieve(self, request, pk=None):
        return Response(OperationSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(
        request=None, responses={202: CancelledSerializer, 404: ErrorBodySerializer, 409: ErrorBodySerializer}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        op = services.cancel_operation(request.user, self.get_object().pk)
        return Response(CancelledSerializer(op).data, status=status.HTTP_202_ACCEPTED)

    def status_body(self, op, code=status.HTTP_200_OK):
        return Response(OperationSerializer(op, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        request=None,
        responses={202: OperationSerializer, 404: ErrorBodySerializer, 409: ErrorBodySerializer},
        description="Pause a pending or running async operation: it is `paused` at once, and each of its slices "
        "stops at the end of the chunk it is in, holding no worker and no row lock. 409 from any other status.",
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self.status_body(control.pause_operation(request.user, self.get_object().pk), status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=None,
        responses={202: OperationSerializer, 404: ErrorBodySerializer, 409: ErrorBodySerializer},
        description="Resume a paused operation: back to `in_progress`, its remaining work enqueued again. "
        "409 unless it is paused.",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self.status_body(control.resume_operation(request.user, self.get_object().pk), status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=RateSerializer,
        responses={
            200: OperationSerializer,
            400: ErrorBodySerializer,
            404: ErrorBodySerializer,
            409: ErrorBodySerializer,
        },
        description="Change the throttle of an unfinished async partial operation (null: none); it applies from "
        "the next chunk. 409 once it has finished.",
    )
    def partial_update(self, request, pk=None):
        op_id = self.get_object().pk  # another user's operation: 404 whatever the body
        body = RateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self.status_body(control.change_operation(request.user, op_id, **body.validated_data))

    @extend_schema(
        request=None,
        responses={
            202: OperationSerializer,
            403: ErrorBodySerializer,
            404: ErrorBodySerializer,
            409: ErrorBodySerializer,
        },
        description="Approve another user's operation awaiting approval (needs bulkops.approve_bulkoperation; never "
        "your own): it is enqueued, or scheduled if its run_at is ahead. 409 from any other status.",
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        op = services.approve_operation(request.user, self.operation_id())
        return Response(
            OperationSerializer(op, context=self.get_serializer_context()).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        request=RejectSerializer,
        responses={
            200: OperationSerializer,
            403: ErrorBodySerializer,
            404: ErrorBodySerializer,
            409: ErrorBodySerializer,
        },
        description="Reject another user's operation awaiting approval (needs bulkops.approve_bulkoperation; never "
        "your own): it is cancelled, every item skipped with REJECTED, the reason recorded. 409 from any other status.",
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = RejectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        op = services.reject_operation(request.user, self.operation_id(), data.validated_data["reason"])
        return Response(OperationSerializer(op, context=self.get_serializer_context()).data)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="pending, succeeded, failed, skipped")],
        responses={200: ItemSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=ItemPagination, filterset_class=ItemFilterSet)
    def items(self, request, pk=None):
        items = self.filter_queryset(self.get_object().items.order_by("position"))
        page = self.paginate_queryset(items)
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="pending, succeeded, failed, skipped")],
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="every item as CSV; an import's: the uploaded row's columns, then "
                "row, item_id, status, error_code, error_message",
            )
        },
    )
    @action(detail=True, methods=["get"], url_path=r"items\.csv", url_name="items-csv", filterset_class=ItemFilterSet)
    def items_csv(self, request, pk=None):
        op = self.get_object()
        items = self.filter_queryset(op.items.order_by("position"))
        if imports.is_import(op):
            header, rows = (
                imports.result_header(op),
                (imports.result_cells(op, item) for item in items.iterator(chunk_size=2000)),
            )
        else:
            values = items.values_list(
                "position", "target_id", "status", "error_code", "error_message", "processed_at", "result__changed"
            )
            header = CSV_COLUMNS
            rows = (
                [*row[:-1], "" if row[-1] is None else str(row[-1]).lower()] for row in values.iterator(chunk_size=2000)
            )
        response = StreamingHttpResponse(streamed(request._request, csv_pieces(header, rows)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="bulk-operation-{op.pk}.csv"'
        return response

    @extend_schema(responses={200: StatsSerializer})
    @action(detail=False, methods=["get"], filterset_class=None)
    def stats(self, request):
        # Their own (staff: all): an approver sees others' operations awaiting approval, but
        # does not count them as theirs.
        qs = self.get_queryset() & BulkOperation.objects.owned_by(request.user)
        by_status = dict(qs.values_list("status").annotate(n=Count("pk")).order_by())
        totals = qs.aggregate(
            processed=Sum("processed_items"),
            succeeded=Sum("successful_items"),
            duration=Avg(F("completed_at") - F("started_at")),
        )
        processed = totals["processed"] or 0
        body = {
            "total_operations": sum(by_status.values()),
            "by_status": {name: by_status.get(name, 0) for name in Status.values},
            "items_processed": processed,
            "success_rate": round(100 * (totals["succeeded"] or 0) / processed, 2) if processed else 0.0,
            "mean_duration_seconds": round(totals["duration"].total_seconds(), 3) if totals["duration"] else None,
        }
        return Response(StatsSerializer(body).data)
