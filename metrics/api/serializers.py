from django.contrib.auth import get_user_model
from rest_framework import serializers

from bulkops import errors
from bulkops.api.audit import AuditEventSerializer
from bulkops.api.mixins import StrictIntegerField, TextField
from bulkops.operations import StrictSerializer
from bulkops.representation import FieldSelectionMixin

from .. import services
from ..models import Metric, MetricEvent, MetricPermission, Role, Verification


class MetricSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    owner = serializers.IntegerField(source="owner_id", read_only=True)
    role = serializers.CharField(source="user_role", read_only=True, default=None)

    class Meta:
        model = Metric
        fields = [
            "id",
            "name",
            "description",
            "definition",
            "verification",
            "owner",
            "role",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class FreeName:
    """Validator: a name no other metric of the owner has (SPEC §12). Context: `viewer`, who
    asks; `metric`, the metric being changed (as they see it) — without it, a new metric they
    will own; `free_name`, a name an import found none of their metrics with, under lock."""

    requires_context = True

    def __call__(self, value, field):
        viewer, metric = field.context["viewer"], field.context.get("metric")
        if metric is None:
            if value == field.context.get("free_name"):
                return
            owner_id = viewer.pk
        else:
            # Which names the owner uses is for those who may rename the metric to learn:
            # anyone else gets the refusal the change itself would give them.
            services.check_role(metric, Role.CAN_EDIT, "update")
            owner_id = metric.owner_id
        try:
            services.check_name_free(viewer, owner_id, value, metric=metric)
        except errors.ValidationFailed as exc:
            raise serializers.ValidationError(exc.message) from None


validate_name = FreeName()


class MetricChangesSerializer(StrictSerializer):
    # Context: see FreeName (the serializers' docstrings are the schema's descriptions).
    name = TextField(
        max_length=200, required=False, validators=[validate_name], help_text="Unique among its owner's metrics"
    )
    description = TextField(allow_blank=True, required=False)
    definition = TextField(allow_blank=True, required=False)
    verification = serializers.ChoiceField(choices=Verification.choices, required=False)


class MetricPatchSerializer(MetricChangesSerializer):
    version = StrictIntegerField(min_value=1, required=False, help_text="Expected version (optimistic lock)")

    def validate(self, attrs):
        if not set(attrs) - {"version"}:
            raise serializers.ValidationError("Nothing to change: give at least one field.")
        return attrs


class MetricCreateSerializer(MetricChangesSerializer):
    name = TextField(max_length=200, validators=[validate_name], help_text="Unique among the metrics you own")


class MetricPermissionSerializer(FieldSelectionMixin, serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = MetricPermission
        fields = ["user_id", "role", "created_at"]


class ShareSerializer(StrictSerializer):
    """Context: the `metric` (as the caller sees it) to share."""

    user_id = StrictIntegerField()
    role = serializers.ChoiceField(choices=[r for r in Role.choices if r[0] != Role.OWNER])

    def validate_user_id(self, value):
        # Whether a user id exists is for those who may share this metric (with anyone) to
        # learn; anyone else gets the refusal the share itself would give them.
        services.check_role(self.context["metric"], Role.FULL_ACCESS, "share")
        user = get_user_model().objects.filter(pk=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"No active user with id {value}.")
        return user


class MetricEventSerializer(AuditEventSerializer):
    class Meta(AuditEventSerializer.Meta):
        model = MetricEvent
