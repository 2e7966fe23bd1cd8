import uuid

from django.conf import settings
from django.db import models
from django.db.models import Case, OuterRef, Q, Subquery, Value, When

from bulkops.audit import AuditEvent


class Verification(models.TextChoices):
    NOT_REQUESTED = "not_requested"
    REQUESTED = "requested"
    IN_REVIEW = "in_review"
    VERIFIED = "verified"
    BACKLOGGED = "backlogged"


class Role(models.TextChoices):
    CAN_VIEW = "can_view"
    CAN_EDIT = "can_edit"
    FULL_ACCESS = "full_access"
    OWNER = "owner"


UNIQUE_NAME = "unique_metric_owner_name"  # the constraint: a name is unique per owner

ROLE_RANK = {Role.CAN_VIEW: 1, Role.CAN_EDIT: 2, Role.FULL_ACCESS: 3, Role.OWNER: 4}


def has_role(role, at_least):
    return ROLE_RANK.get(role, 0) >= ROLE_RANK[at_least]


class MetricQuerySet(models.QuerySet):
    def with_role(self, user):
        """Annotate `user_role`: owner (and staff) `owner`, else the shared role, else None."""
        if user.is_staff:
            return self.annotate(user_role=Value(Role.OWNER.value))
        shared = MetricPermission.objects.filter(metric=OuterRef("pk"), user=user).values("role")[:1]
        return self.annotate(user_role=Case(When(owner=user, then=Value(Role.OWNER.value)), default=Subquery(shared)))

    def visible_to(self, user):
        """Metrics `user` holds any role on; the rest do not exist for them."""
        qs = self.with_role(user)
        return qs if user.is_staff else qs.filter(Q(owner=user) | Q(user_role__isnull=False))


class Metric(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    definition = models.TextField(blank=True, default="")
    verification = models.CharField(max_length=20, choices=Verification.choices, default=Verification.NOT_REQUESTED)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_metrics")
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MetricQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        # An import may match on the name among the caller's own (SPEC §12): one metric per name.
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name=UNIQUE_NAME)]

    def __str__(self):
        return self.name


class MetricPermission(models.Model):
    """A role on one metric shared with one user."""

    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="permissions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="metric_permissions")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["metric", "user"], name="unique_metric_user_permission")]


class MetricEvent(AuditEvent):
    """One changed field of one metric, or one changed share (`permission:<user id>`): the audit trail."""

    metric = models.ForeignKey(Metric, on_delete=models.CASCADE, related_name="events")
