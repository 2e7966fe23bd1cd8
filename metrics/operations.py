"""The metric bulk operations. Each calls the same service as the single endpoint."""

from rest_framework import serializers

from bulkops.operations import Operation, StrictSerializer
from bulkops.registry import register

from . import services
from .filtersets import MetricFilterSet
from .models import Metric, Verification


class VerificationData(StrictSerializer):
    verification = serializers.ChoiceField(choices=Verification.choices)


class MetricOperation(Operation):
    resource = "metrics"
    id_field = serializers.UUIDField
    filterset_class = MetricFilterSet

    def visible(self, user):
        return Metric.objects.visible_to(user)

    def lock(self, user, ids):
        return services.lock(user, ids)

    def apply(self, metric, ctx, data):
        return services.apply_update(metric, ctx, data)

    def save(self, changes):
        services.save(changes)

    def describe(self, change):
        return change.before or None, {"changed": change.changed, "version": change.metric.version}


@register
class SetVerification(MetricOperation):
    name, label, data_serializer = "set_verification", "Set verification", VerificationData
