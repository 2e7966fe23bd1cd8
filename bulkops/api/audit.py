"""The history entry shape every domain app's audit endpoint shows."""

from rest_framework import serializers

from ..representation import FieldSelectionMixin


# Each domain's history serializer subclasses this and names its event model in its Meta.
class AuditEventSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    """One entry of a record's history: a field that changed, who changed it, in which bulk operation and why."""

    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True)
    bulk_operation = serializers.UUIDField(source="bulk_operation_id", read_only=True, allow_null=True)

    class Meta:
        fields = ["field", "old_value", "new_value", "actor", "bulk_operation", "reason", "created_at"]
