"""The metric bulk operations. Each calls the same service as the single endpoint."""

from functools import cached_property

from rest_framework import serializers

from bulkops import errors
from bulkops.operations import Operation, StrictSerializer
from bulkops.registry import register
from bulkops.services import json_safe, restore_payload
from config.exceptions import first_message

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
        result = {"changed": change.changed, "version": change.metric.version}
        if change.after:
            result["after"] = json_safe(change.after)
        return change.before or None, result


@register
class SetVerification(MetricOperation):
    name, label, data_serializer = "set_verification", "Set verification", VerificationData


@register
class Revert(MetricOperation):
    """Undo another operation, item by item; each item's payload says what (bulkops.services.revert_operation)."""

    name, label = "revert", "Revert"
    internal = True  # started by POST …/{id}/revert/, never named in a create request

    def revert_payload(self, before, result):
        """What undoes one item of an operation, from that item's `before` and `result`."""
        return restore_payload(before, result)

    def apply(self, metric, ctx, data):
        return services.apply_revert(
            metric, ctx, data["fields"], expected_version=data["version"], after=data.get("after")
        )


@register
class SetVerificationEach(SetVerification):
    """set_verification with a value per item (PUT /api/v1/metrics/, metrics/api/collection.py).
    The value is checked here, item by item, so that a bad one fails its item only."""

    name, label = "set_verification_each", "Set verification (a value per metric)"
    internal = True  # started by PUT /api/v1/metrics/

    @cached_property
    def checker(self):
        """One serializer for every item: building one per item cost a fifth of a 100-item PUT."""
        return self.data_serializer()

    def apply(self, metric, ctx, data):
        try:
            data = self.checker.run_validation(data)
        except serializers.ValidationError as exc:
            raise errors.ValidationFailed(first_message(exc.detail)) from None
        return super().apply(metric, ctx, data)
