from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from bulkops import errors
from bulkops.operations import Context

from .. import services
from ..filtersets import MetricFilterSet
from ..models import Metric
from .serializers import (
    MetricCreateSerializer,
    MetricPatchSerializer,
    MetricPermissionSerializer,
    MetricSerializer,
    ShareSerializer,
)


class MetricViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Metrics: list (filters), create, retrieve, PATCH, sharing."""

    serializer_class = MetricSerializer
    filterset_class = MetricFilterSet
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        return Metric.objects.visible_to(self.request.user).order_by("name", "id")

    def get_object(self):
        metric = self.get_queryset().filter(pk=self.kwargs["pk"]).first()
        if metric is None:
            raise errors.NotFound("Metric not found")
        return metric

    @extend_schema(request=MetricCreateSerializer, responses={201: MetricSerializer})
    def create(self, request):
        data = MetricCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        metric = Metric.objects.create(owner=request.user, **data.validated_data)
        return Response(MetricSerializer(self.get_queryset().get(pk=metric.pk)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MetricPatchSerializer, responses={200: MetricSerializer})
    def partial_update(self, request, pk=None):
        data = MetricPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        version = changes.pop("version", None)
        change = services.change(
            self.kwargs["pk"], Context(actor=request.user), services.apply_update, changes, expected_version=version
        )
        return Response(MetricSerializer(change.metric).data)

    @extend_schema(methods=["get"], responses={200: MetricPermissionSerializer(many=True)})
    @extend_schema(methods=["post"], request=ShareSerializer, responses={201: MetricPermissionSerializer})
    @action(detail=True, methods=["get", "post"])
    def permissions(self, request, pk=None):
        if request.method == "POST":
            data = ShareSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            permission = services.share(
                self.kwargs["pk"], request.user, data.validated_data["user_id"], data.validated_data["role"]
            )
            return Response(MetricPermissionSerializer(permission).data, status=status.HTTP_201_CREATED)
        metric = self.get_object()
        return Response(MetricPermissionSerializer(metric.permissions.order_by("created_at"), many=True).data)
