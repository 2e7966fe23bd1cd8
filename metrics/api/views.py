import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from bulkops.api.serializers import ErrorBodySerializer
from bulkops.operations import Context

from .. import services
from ..filtersets import MetricFilterSet
from ..models import Metric
from .serializers import (
    MetricCreateSerializer,
    MetricEventSerializer,
    MetricPatchSerializer,
    MetricPermissionSerializer,
    MetricSerializer,
    ShareSerializer,
)


class MetricViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Metrics: list (filters), create, retrieve, PATCH, history, sharing."""

    queryset = Metric.objects.none()  # the model, for the schema; get_queryset says what a user sees
    serializer_class = MetricSerializer
    filterset_class = MetricFilterSet
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"

    def get_queryset(self):
        return Metric.objects.visible_to(self.request.user).order_by("name", "id")

    def get_object(self):
        metric = self.get_queryset().filter(pk=self.metric_id()).first()
        if metric is None:
            raise exceptions.NotFound("Metric not found")
        return metric

    def metric_id(self):
        # DRF's NotFound, not errors.NotFound: OPTIONS on the list calls get_object() (the
        # collection takes PUT) and expects an APIException when there is no object.
        try:
            return uuid.UUID(str(self.kwargs.get("pk")))
        except ValueError:
            raise exceptions.NotFound("Metric not found") from None

    @extend_schema(
        request=MetricCreateSerializer,
        responses={
            201: MetricSerializer,
            409: OpenApiResponse(ErrorBodySerializer, description="another request took the name a moment ago"),
        },
    )
    def create(self, request):
        data = MetricCreateSerializer(data=request.data, context={"viewer": request.user})
        data.is_valid(raise_exception=True)
        metric = services.create(Context(actor=request.user), data.validated_data)
        return Response(MetricSerializer(metric).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=MetricPatchSerializer,
        responses={
            200: MetricSerializer,
            409: OpenApiResponse(
                ErrorBodySerializer, description="a stale `version`, or another request took the name a moment ago"
            ),
        },
    )
    def partial_update(self, request, pk=None):
        data = MetricPatchSerializer(data=request.data, context={"viewer": request.user, "metric": self.get_object()})
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        version = changes.pop("version", None)
        change = services.change(
            self.metric_id(), Context(actor=request.user), services.apply_update, changes, expected_version=version
        )
        return Response(MetricSerializer(change.metric).data)

    @extend_schema(responses={200: MetricEventSerializer(many=True)})
    @action(detail=True, methods=["get"], filterset_class=None)
    def history(self, request, pk=None):
        """Every change of the metric and of its sharing, oldest first."""
        events = self.get_object().events.order_by("created_at", "id")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(MetricEventSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(methods=["get"], responses={200: MetricPermissionSerializer(many=True)})
    @extend_schema(
        methods=["post"],
        request=ShareSerializer,
        responses={201: MetricPermissionSerializer, 200: MetricPermissionSerializer},
    )
    @action(detail=True, methods=["get", "post"], filterset_class=None, pagination_class=None)
    def permissions(self, request, pk=None):
        """Who the metric is shared with (any role may look); owner and full_access share."""
        if request.method == "POST":
            data = ShareSerializer(data=request.data, context={"metric": self.get_object()})
            data.is_valid(raise_exception=True)
            permission, created = services.share(
                self.metric_id(), request.user, data.validated_data["user_id"], data.validated_data["role"]
            )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response(MetricPermissionSerializer(permission).data, status=code)
        permissions = self.get_object().permissions.order_by("created_at", "id")
        context = self.get_serializer_context()
        return Response(MetricPermissionSerializer(permissions, many=True, context=context).data)
