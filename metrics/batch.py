"""What the batch endpoints (bulkops/batch.py) do with metrics: the single endpoints'
serializers and services, one locked record at a time."""

from rest_framework import serializers

from bulkops.batch import Handler, register_handler, validated

from . import services
from .api.serializers import MetricCreateSerializer, MetricPatchSerializer, MetricSerializer
from .models import Metric


@register_handler
class MetricHandler(Handler):
    resource_type, label, serializer_class = "metrics", "Metric", MetricSerializer
    methods = ("POST", "PATCH")  # the API never deletes a metric
    id_field = serializers.UUIDField

    def visible(self, user):
        return Metric.objects.visible_to(user)

    def lock(self, user, ids):
        return services.lock(user, ids)

    def create(self, ctx, data):
        return self.represent(services.create(ctx, validated(MetricCreateSerializer(data=data))))

    def update(self, metric, ctx, data):
        changes = dict(validated(MetricPatchSerializer(data=data)))
        version = changes.pop("version", None)
        change = services.apply_update(metric, ctx, changes, expected_version=version)
        services.save([change])
        return self.represent(change.metric)
