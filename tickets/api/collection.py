"""PATCH /api/v1/tickets/: change many tickets, all or nothing (SPEC §5.2, seed 004).

The array becomes a synchronous, atomic bulk operation of `patch` (tickets/operations.py),
one item per element carrying the element's fields: recorded in the history, and run by
the engine in one transaction with the rows locked in id order, one UPDATE per row so that
triggers on the table work (seed 004).

Every element is validated first — 400 naming the index, nothing stored — since one
invalid element would fail them all anyway. The items are applied as one chunk, so a 422
names every item that fails its own checks (NOT_FOUND, PERMISSION_DENIED, CONFLICT,
INVALID_TRANSITION). When the database refuses the write instead (a trigger, a
constraint), the engine replays the writes one savepoint per item to find which, and names
the failing ones of the first group of 50 that has any. Every other item is ROLLED_BACK:
`errors` has one entry per element, in request order, and `fail_count` is their number.
"""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from bulkops import conf
from bulkops import services as bulk
from bulkops.api.collection import CollectionThrottleMixin, UniqueIdsListSerializer, unsuccessful_items
from bulkops.api.mixins import StrictIntegerField
from bulkops.api.serializers import ErrorBodySerializer
from bulkops.counters import counters
from bulkops.models import Execution, Mode, Status

from ..models import Ticket
from .serializers import TicketPatchSerializer, TicketSerializer
from .views import TicketViewSet


class TicketChangeSerializer(TicketPatchSerializer):
    """One element: the ticket's id, and what PATCH /api/v1/tickets/{id}/ would take."""

    id = StrictIntegerField(min_value=1)

    class Meta:
        list_serializer_class = UniqueIdsListSerializer

    def to_internal_value(self, data):
        # The ticket this element changes: it may keep the external id it has (FreeExternalId).
        element_id = data.get("id") if isinstance(data, dict) else None
        self.ticket_id = element_id if type(element_id) is int else None
        return super().to_internal_value(data)

    def validate(self, attrs):
        super().validate({name: value for name, value in attrs.items() if name != "id"})
        return attrs


class ChangedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    success = serializers.BooleanField()
    data = TicketSerializer()


class RefusedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    error_code = serializers.CharField(help_text="The item's own code, or ROLLED_BACK")
    error_message = serializers.CharField()


class CollectionAnswerSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    success_count = serializers.IntegerField()
    fail_count = serializers.IntegerField()
    operation_id = serializers.UUIDField(allow_null=True, help_text="null for an empty array: nothing was recorded")


class CollectionChangedSerializer(CollectionAnswerSerializer):
    results = ChangedSerializer(many=True)


class CollectionRefusedSerializer(CollectionAnswerSerializer):
    errors = RefusedSerializer(many=True)


# An empty array changes nothing, so it records no operation either (SPEC §16).
NOTHING_CHANGED = {"success": True, "success_count": 0, "fail_count": 0, "results": [], "operation_id": None}


def change_tickets(user, elements):
    """Run the elements as one atomic bulk operation of `patch`; returns the operation."""
    request = bulk.Request(
        resource_type="tickets",
        operation_type="patch",
        ids=[element["id"] for element in elements],
        payloads=[{name: value for name, value in element.items() if name != "id"} for element in elements],
        mode=Mode.ATOMIC,
        execution=Execution.SYNC,
        batch_size=len(elements),  # one chunk: every item is checked before the rollback
    )
    op, _ = bulk.start_operation(user, request)
    return op


def answer(op, ids):
    """200 with every ticket as it is now, or 422 with every item's error (in atomic mode,
    every item is failed then: its own code, or ROLLED_BACK)."""
    body = {**counters(op, "collection_patch"), "operation_id": op.pk}
    if op.status == Status.FAILED:
        items = unsuccessful_items(op)
        errors = [{"id": int(i.target_id), "error_code": i.error_code, "error_message": i.error_message} for i in items]
        body = {"success": False, **body, "errors": errors}
        return Response(CollectionRefusedSerializer(body).data, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    tickets = Ticket.objects.in_bulk(ids)  # read back: what triggers did shows too
    # The tickets as the single PATCH shows them, in one pass: a ChangedSerializer around each
    # of them cost 40 % more than the tickets themselves (docs/benchmarks.md).
    data = TicketSerializer([tickets[pk] for pk in ids], many=True).data
    results = [{"id": pk, "success": True, "data": ticket} for pk, ticket in zip(ids, data, strict=True)]
    return Response({**CollectionAnswerSerializer({"success": True, **body}).data, "results": results})


class TicketCollectionViewSet(CollectionThrottleMixin, TicketViewSet):
    """The ticket endpoints, and PATCH on the collection."""

    throttle_scope = "bulk"

    @extend_schema(
        operation_id="tickets_bulk_partial_update",
        request=TicketChangeSerializer(many=True),
        responses={
            200: CollectionChangedSerializer,
            400: ErrorBodySerializer,
            422: OpenApiResponse(CollectionRefusedSerializer, description="an item failed: nothing was changed"),
            429: OpenApiResponse(ErrorBodySerializer, description="throttled, or too many active operations"),
        },
    )
    def bulk_partial_update(self, request):
        """Change up to BULKOPS_MAX_ATOMIC_ITEMS tickets in one transaction, all or nothing."""
        elements = TicketChangeSerializer(
            data=request.data,
            many=True,
            max_length=conf.MAX_ATOMIC_ITEMS,
            context={"viewer": request.user},
        )
        elements.is_valid(raise_exception=True)
        if not elements.validated_data:
            return Response(CollectionChangedSerializer(NOTHING_CHANGED).data)
        ids = [element["id"] for element in elements.validated_data]
        return answer(change_tickets(request.user, elements.validated_data), ids)
