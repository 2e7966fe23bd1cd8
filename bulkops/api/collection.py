"""Bulk writes on a list route, as NetBox does them: PUT / PATCH /api/v1/<resource>/
(SPEC §5.2, §5.3). The domain apps' collection viewsets build on these pieces."""

from rest_framework import serializers
from rest_framework.routers import SimpleRouter

from ..models import ItemStatus
from .throttling import ScopedRateThrottle

COLLECTION_ACTIONS = {"put": "bulk_update", "patch": "bulk_partial_update"}


class CollectionRouter(SimpleRouter):
    """A SimpleRouter whose list route also takes PUT and PATCH, for viewsets that define
    `bulk_update` / `bulk_partial_update` (DRF binds only the methods a viewset has)."""

    routes = [
        SimpleRouter.routes[0]._replace(mapping={**SimpleRouter.routes[0].mapping, **COLLECTION_ACTIONS}),
        *SimpleRouter.routes[1:],
    ]


class CollectionThrottleMixin:
    """Throttle the collection writes by `throttle_scope`, and nothing else of the viewset."""

    def get_throttles(self):
        if self.action in COLLECTION_ACTIONS.values():
            return [ScopedRateThrottle()]
        return super().get_throttles()


class UniqueIdsListSerializer(serializers.ListSerializer):
    """Elements that each name a record by `id`: a record named twice would leave it open
    which change wins, so that is refused, naming both places."""

    def validate(self, attrs):
        first = {}
        for index, element in enumerate(attrs):
            seen = first.setdefault(element["id"], index)
            if seen != index:
                raise serializers.ValidationError(f"[{index}] duplicate id {element['id']} (first at [{seen}]).")
        return attrs


def unsuccessful_items(op):
    """The items of a finished sync operation that did not succeed, in request order: read
    only when its counters say there are some, so a call where every item succeeded answers
    from its request's own ids."""
    if op.successful_items == op.total_items:
        return []
    fields = ("target_id", "status", "error_code", "error_message")
    return list(op.items.exclude(status=ItemStatus.SUCCEEDED).order_by("position").only(*fields))
