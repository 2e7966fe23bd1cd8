import csv

from django.db.models import Avg, Count, F, Sum
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from .. import errors, services
from ..filtersets import BulkOperationFilterSet, ItemFilterSet
from ..models import BulkOperation, Execution, Mode, Status
from .pagination import ItemPagination, OperationPagination
from .serializers import (
    CancelledSerializer,
    CreatedSerializer,
    CreateOperationSerializer,
    ItemSerializer,
    OperationSerializer,
    StatsSerializer,
    SummarySerializer,
)

CSV_COLUMNS = ["position", "item_id", "status", "error_code", "error_message", "processed_at"]


class Echo:
    def write(self, value):
        return value


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

    def get_throttles(self):
        return [ScopedRateThrottle()] if self.action in {"create", "revert", "retry"} else []

    def get_queryset(self):
        qs = BulkOperation.objects.visible_to(self.request.user).order_by("-created_at")
        return qs.filter(resource_type=self.resource_type) if self.resource_type else qs

    def get_object(self):
        op = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if op is None:
            raise errors.NotFound("Bulk operation not found")
        return op

    def respond_created(self, op, created):
        """202 for a new async operation, 200 for a replayed key or a finished sync one."""
        if op.execution == Execution.SYNC and created:
            code = (
                status.HTTP_422_UNPROCESSABLE_ENTITY if op.mode == Mode.ATOMIC and op.status == Status.FAILED else 200
            )
            return Response(OperationSerializer(op, context=self.get_serializer_context()).data, status=code)
        body = CreatedSerializer(op, context=self.get_serializer_context()).data
        response = Response(body, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)
        response["Location"] = body["links"]["self"]
        return response

    def start(self, request, bulk_request):
        key = request.headers.get("Idempotency-Key")
        fingerprint = services.fingerprint({"resource": bulk_request.resource_type, "body": request.data})
        op, created = services.start_operation(
            request.user, bulk_request, idempotency_key=key, body_fingerprint=fingerprint
        )
        return self.respond_created(op, created)

    @extend_schema(
        request=CreateOperationSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={
            202: CreatedSerializer,
            200: OpenApiResponse(OperationSerializer, description="sync execution, or a replayed Idempotency-Key"),
            422: OpenApiResponse(OperationSerializer, description="sync atomic operation rolled back"),
        },
    )
    def create(self, request):
        data = CreateOperationSerializer(
            data=request.data, context={"request": request, "resource_type": self.resource_type}
        )
        data.is_valid(raise_exception=True)
        return self.start(request, data.validated_data)

    @extend_schema(responses={200: SummarySerializer(many=True)})
    def list(self, request):
        qs = self.filter_queryset(self.get_queryset())
        if "user" in request.query_params and not request.user.is_staff:
            qs = qs.none() if request.query_params["user"] != str(request.user.pk) else qs
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(SummarySerializer(page, many=True).data)

    @extend_schema(responses={200: OperationSerializer})
    def retrieve(self, request, pk=None):
        return Response(OperationSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={202: CancelledSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        op = services.cancel_operation(request.user, self.get_object().pk)
        return Response(CancelledSerializer(op).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("status", str, description="pending, succeeded, failed, skipped")],
        responses={200: ItemSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], pagination_class=ItemPagination, filterset_class=ItemFilterSet)
    def items(self, request, pk=None):
        items = self.filter_queryset(self.get_object().items.order_by("position"))
        page = self.paginate_queryset(items)
        return self.get_paginated_response(ItemSerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="every item as CSV")})
    @action(detail=True, methods=["get"], url_path=r"items\.csv", url_name="items-csv", filterset_class=None)
    def items_csv(self, request, pk=None):
        op = self.get_object()
        rows = op.items.order_by("position").values_list(
            "position", "target_id", "status", "error_code", "error_message", "processed_at"
        )
        writer = csv.writer(Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for row in rows.iterator(chunk_size=2000):
                yield writer.writerow(row)

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="bulk-operation-{op.pk}.csv"'
        return response

    @extend_schema(responses={200: StatsSerializer})
    @action(detail=False, methods=["get"], filterset_class=None)
    def stats(self, request):
        qs = self.get_queryset()
        by_status = dict(qs.values_list("status").annotate(n=Count("pk")).order_by())
        totals = qs.aggregate(
            processed=Sum("processed_items"),
            succeeded=Sum("successful_items"),
            duration=Avg(F("completed_at") - F("started_at")),
        )
        processed = totals["processed"] or 0
        body = {
            "total_operations": sum(by_status.values()),
            "by_status": by_status,
            "items_processed": processed,
            "success_rate": round(100 * (totals["succeeded"] or 0) / processed, 2) if processed else 0.0,
            "mean_duration_seconds": round(totals["duration"].total_seconds(), 3) if totals["duration"] else None,
        }
        return Response(StatsSerializer(body).data)
