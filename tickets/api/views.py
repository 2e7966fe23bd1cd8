from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from bulkops.api.serializers import ErrorBodySerializer

from .. import services
from ..filtersets import TicketFilterSet
from ..models import Category, Ticket
from .serializers import (
    CategorySerializer,
    CommentCreateSerializer,
    CommentSerializer,
    TicketCreateSerializer,
    TicketEventSerializer,
    TicketPatchSerializer,
    TicketSerializer,
)


def context_of(request):
    return services.Context(actor=request.user)


class TicketViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet):
    """Tickets: list (filters), create, retrieve, PATCH, DELETE (soft), history, comments."""

    queryset = Ticket.objects.none()  # the model, for the schema; get_queryset says what a user sees
    serializer_class = TicketSerializer
    filterset_class = TicketFilterSet
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return Ticket.objects.visible_to(self.request.user).order_by("id")

    def get_object(self):
        ticket = self.get_queryset().filter(pk=self.ticket_id()).first()
        if ticket is None:
            raise exceptions.NotFound("Ticket not found")
        return ticket

    def ticket_id(self):
        # An APIException, as DRF's own get_object raises (OPTIONS relies on it).
        try:
            return int(self.kwargs.get("pk"))
        except (TypeError, ValueError):
            raise exceptions.NotFound("Ticket not found") from None

    @extend_schema(
        request=TicketCreateSerializer,
        responses={
            201: TicketSerializer,
            409: OpenApiResponse(ErrorBodySerializer, description="another request took the external id a moment ago"),
        },
    )
    def create(self, request):
        data = TicketCreateSerializer(data=request.data, context={"viewer": request.user})
        data.is_valid(raise_exception=True)
        ticket = services.create(context_of(request), data.validated_data)
        return Response(TicketSerializer(ticket).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=TicketPatchSerializer,
        responses={
            200: TicketSerializer,
            409: OpenApiResponse(
                ErrorBodySerializer,
                description="a stale `version`, or another request took the external id a moment ago",
            ),
        },
    )
    def partial_update(self, request, pk=None):
        data = TicketPatchSerializer(data=request.data, context={"viewer": request.user, "ticket_id": self.ticket_id()})
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        version = changes.pop("version", None)
        change = services.change(
            self.ticket_id(), context_of(request), services.apply_update, changes, expected_version=version
        )
        return Response(TicketSerializer(change.ticket).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.change(self.ticket_id(), context_of(request), services.apply_delete)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: TicketSerializer})
    @action(detail=True, methods=["post"], filterset_class=None)
    def restore(self, request, pk=None):
        change = services.change(self.ticket_id(), context_of(request), services.apply_restore, include_deleted=True)
        return Response(TicketSerializer(change.ticket).data)

    @extend_schema(responses={200: TicketEventSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def history(self, request, pk=None):
        events = self.get_object().events.order_by("created_at", "id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(TicketEventSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(methods=["get"], responses={200: CommentSerializer(many=True)})
    @extend_schema(methods=["post"], request=CommentCreateSerializer, responses={201: CommentSerializer})
    @action(detail=True, methods=["get", "post"], filterset_class=None)
    def comments(self, request, pk=None):
        if request.method == "POST":
            data = CommentCreateSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            change = services.change(
                self.ticket_id(), context_of(request), services.apply_comment, data.validated_data["body"]
            )
            return Response(CommentSerializer(change.comments[0]).data, status=status.HTTP_201_CREATED)
        comments = self.get_object().comments.order_by("created_at", "id")
        page = self.paginate_queryset(comments)
        return self.get_paginated_response(CommentSerializer(page, many=True, context={"request": request}).data)


class IsAgentOrReadOnly(permissions.BasePermission):
    """Refuses a write before its body is looked at, by the services' rule."""

    def has_permission(self, request, view):
        if request.method not in permissions.SAFE_METHODS:
            services.check_can_change_categories(request.user)
        return True


class CategoryViewSet(viewsets.ModelViewSet):
    """Categories: everyone reads, agents write (tickets.services); a category in use cannot be deleted (409)."""

    queryset = Category.objects.order_by("name")
    serializer_class = CategorySerializer
    permission_classes = [permissions.IsAuthenticated, IsAgentOrReadOnly]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = "[0-9]+"

    def perform_create(self, serializer):
        serializer.instance = services.create_category(context_of(self.request), serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_category(
            serializer.instance, context_of(self.request), serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.delete_category(instance, context_of(self.request))
