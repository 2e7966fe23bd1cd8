"""The metric operation types. Each calls the same service as the single endpoint; finding,
locking, saving and describing metrics are the resource's (metrics/resources.py)."""

import uuid
from functools import cached_property

from rest_framework import serializers

from bulkops import errors
from bulkops.imports import HIDDEN, ImportType, valid
from bulkops.operations import OperationType, StrictSerializer
from bulkops.registry import register
from config.exceptions import first_message

from . import services
from .api.serializers import MetricChangesSerializer, MetricCreateSerializer
from .models import Metric, Verification
from .resources import Metrics


class VerificationData(StrictSerializer):
    verification = serializers.ChoiceField(choices=Verification.choices)


@register
class SetVerification(OperationType):
    resource = Metrics
    name, label, data_serializer = "set_verification", "Set verification", VerificationData


@register
class Revert(OperationType):
    """Undo another operation, item by item; each item's payload (Metrics.revert_payload) says what."""

    resource, name, label = Metrics, "revert", "Revert"
    internal = True  # started by POST …/{id}/revert/, never named in a create request

    def apply(self, metric, ctx, data):
        if "delete_created" in data:  # a metric an import created: deleted, if unchanged since
            return services.apply_remove(metric, ctx, expected_version=data["version"])
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


@register
class Import(ImportType):
    """Rows of a file (bulkops.imports): each creates a metric as POST /api/v1/metrics/ does, or
    changes the one it matches as PATCH does — by `id`, or by `name` among the caller's own."""

    resource = Metrics
    columns = ("id", "name", "description", "definition", "verification")
    match_fields = ("id", "name")

    def find(self, user, field, values):
        if field == "name":
            return services.lock_own(user, values)
        ids = [uuid for uuid in map(as_uuid, values) if uuid is not None]
        found = {str(pk): metric for pk, metric in services.lock(user, ids).items()}
        hidden = Metric.objects.filter(pk__in=ids).exclude(pk__in=[m.pk for m in found.values()])
        found.update({str(pk): HIDDEN for pk in hidden.values_list("pk", flat=True)})
        return found

    def create_row(self, ctx, row):
        # A row keyed by name comes here only once `find` found none of the caller's metrics with it.
        free = row.get("name") if ctx.data["match_on"] == "name" else None
        data = valid(MetricCreateSerializer(data=row, context={"viewer": ctx.actor, "free_name": free}))
        return services.apply_create(ctx, data)

    def update_row(self, metric, ctx, row):
        if not row:  # the row names its metric and nothing else
            return services.apply_update(metric, ctx, {})
        changes = valid(MetricChangesSerializer(data=row, context={"viewer": ctx.actor, "metric": metric}))
        return services.apply_update(metric, ctx, dict(changes))


def as_uuid(value):
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
