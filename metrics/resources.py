"""Metrics as the bulk engine sees them (bulkops.resources): registered once, for the bulk
operations (metrics/operations.py) and the batch endpoints alike, on the single endpoints'
serializers and services."""

from rest_framework import serializers

from bulkops.registry import register_resource
from bulkops.resources import VersionedResource, validated

from . import services
from .api.serializers import MetricCreateSerializer, MetricPatchSerializer, MetricSerializer
from .filtersets import MetricFilterSet
from .models import Metric


@register_resource
class Metrics(VersionedResource):
    name, model, label, id_alias = "metrics", Metric, "Metric", "metric_ids"
    id_field = serializers.UUIDField
    filterset_class = MetricFilterSet
    batch_methods, serializer_class = ("POST", "PATCH"), MetricSerializer  # the API never deletes a metric

    def visible(self, user, *, include_deleted=False):
        return Metric.objects.visible_to(user)

    def lock(self, user, ids, *, include_deleted=False):
        return services.lock(user, ids)

    def change(self, metric, ctx, values):
        return services.apply_update(metric, ctx, values)

    def save(self, changes):
        services.save(changes)

    def create(self, ctx, data):
        data = validated(MetricCreateSerializer(data=data, context={"viewer": ctx.actor}))
        return self.represent(services.create(ctx, data))

    def revert_payload(self, before, result):
        if result.get("action") == "created":  # an import's new metric
            return {"delete_created": True, "version": result["version"]}
        return super().revert_payload(before, result)

    def update(self, metric, ctx, data):
        changes = dict(validated(MetricPatchSerializer(data=data, context={"viewer": ctx.actor, "metric": metric})))
        version = changes.pop("version", None)
        change = services.apply_update(metric, ctx, changes, expected_version=version)
        services.save([change])
        return self.represent(change.metric)
