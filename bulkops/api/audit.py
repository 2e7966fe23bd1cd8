from rest_framework import serializers

from .mixins import FieldSelectionMixin


class AuditEventSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    """One history entry, the same for every domain; a subclass names the model in its Meta."""

    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True)
    bulk_operation = serializers.UUIDField(source="bulk_operation_id", read_only=True, allow_null=True)

    class Meta:
        fields = ["field", "old_value", "new_value", "actor", "bulk_operation", "reason", "created_at"]
