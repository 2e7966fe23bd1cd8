from rest_framework import serializers

from bulkops.operations import OperationType, StrictSerializer
from bulkops.registry import register

from .resources import Books


class ShelfData(StrictSerializer):
    shelf = serializers.CharField(max_length=50)


@register
class MoveToShelf(OperationType):
    resource, name, label, data_serializer = Books, "move_to_shelf", "Move to shelf", ShelfData
