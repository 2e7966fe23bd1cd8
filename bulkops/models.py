"""The engine's tables: an operation, its items, and each user's webhook secret."""

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    AWAITING_APPROVAL = "awaiting_approval"
    IN_PROGRESS = "in_progress"
    CANCELLING = "cancelling"
    PAUSED = "paused"
    COMPLETED = "completed"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Counted by BULKOPS_MAX_ACTIVE_PER_USER: a scheduled operation holds nothing until its time.
ACTIVE = (Status.PENDING, Status.AWAITING_APPROVAL, Status.IN_PROGRESS, Status.CANCELLING, Status.PAUSED)
# Not started yet: a cancel skips every item at once.
WAITING = (Status.PENDING, Status.SCHEDULED, Status.AWAITING_APPROVAL)
APPROVE_PERMISSION = "bulkops.approve_bulkoperation"
FINISHED = (Status.COMPLETED, Status.PARTIAL, Status.FAILED, Status.CANCELLED)


class Mode(models.TextChoices):
    PARTIAL = "partial"
    ATOMIC = "atomic"


class Execution(models.TextChoices):
    SYNC = "sync"
    ASYNC = "async"


class ItemStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class BulkOperationQuerySet(models.QuerySet):
    def owned_by(self, user):
        """What `user` may act on as its owner (cancel, revert, retry): staff, everything."""
        return self if user.is_staff else self.filter(user=user)

    def visible_to(self, user):
        """What `user` may see: their own; an approver also every operation awaiting approval,
        approved or rejected (what approvers decide, and what they decided)."""
        if user.is_staff:
            return self
        if not user.has_perm(APPROVE_PERMISSION):
            return self.filter(user=user)
        reviewed = models.Q(approved_at__isnull=False) | ~models.Q(rejection_reason="")
        return self.filter(models.Q(user=user) | models.Q(status=Status.AWAITING_APPROVAL) | reviewed)

    def active(self):
        return self.filter(status__in=ACTIVE)


class BulkOperation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulk_operations")
    resource_type = models.CharField(max_length=20)
    operation_type = models.CharField(max_length=50)
    operation_data = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.PARTIAL)
    execution = models.CharField(max_length=10, choices=Execution.choices, default=Execution.ASYNC)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    total_items = models.PositiveIntegerField(default=0)
    processed_items = models.PositiveIntegerField(default=0)
    successful_items = models.PositiveIntegerField(default=0)
    failed_items = models.PositiveIntegerField(default=0)
    skipped_items = models.PositiveIntegerField(default=0)
    # Succeeded without changing anything (the ticket already had that priority): a part of
    # successful_items, so that "3,000 succeeded" does not hide that 2,990 were no-ops.
    unchanged_items = models.PositiveIntegerField(default=0)
    # An import's succeeded items by what they did (the rest of them: unchanged_items).
    created_items = models.PositiveIntegerField(default=0)
    updated_items = models.PositiveIntegerField(default=0)
    # Null: the request named none, and the engine sizes each chunk (bulkops.sizing).
    batch_size = models.PositiveIntegerField(null=True, blank=True, default=None)
    slices = models.PositiveIntegerField(default=1)
    # The operation's own rate limit, across all its slices and workers (bulkops/pacing.py).
    max_items_per_second = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    reverts = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reverted_by")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retried_by")
    callback_url = models.URLField(max_length=500, blank=True, default="")
    webhook = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, default="")
    # When a scheduled operation starts (SPEC §13); null: as soon as it can.
    run_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="approved_operations"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)

    objects = BulkOperationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["status", "heartbeat_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="unique_idempotency_key_per_user",
            )
        ]
        permissions = [("approve_bulkoperation", "Can approve or reject other users' bulk operations")]

    def __str__(self):
        return f"{self.operation_type} on {self.total_items} {self.resource_type} ({self.status})"

    @property
    def is_finished(self):
        return self.status in FINISHED

    @property
    def progress_percentage(self):
        """The share of items processed: skipped items were not (a cancel at 400 of 3,000 shows 13)."""
        if not self.total_items:
            return 100 if self.is_finished else 0
        return round(100 * self.processed_items / self.total_items)

    @property
    def success_rate(self):
        if not self.processed_items:
            return 0.0
        return round(100 * self.successful_items / self.processed_items, 2)

    @property
    def duration_seconds(self):
        if not self.started_at:
            return None
        end = self.completed_at or timezone.now()
        return round((end - self.started_at).total_seconds(), 3)

    @property
    def estimated_completion(self):
        """From the throughput so far; before any progress, from the typical rate."""
        if self.is_finished:
            return self.completed_at
        if self.status == Status.AWAITING_APPROVAL:
            return None  # nobody knows when someone approves it
        remaining = self.total_items - self.processed_items - self.skipped_items
        now = timezone.now()
        start = self.started_at or self.created_at
        elapsed = (now - start).total_seconds()
        if self.processed_items and elapsed > 0:
            rate = self.processed_items / elapsed
        else:
            rate = 2_000  # items/s: a conservative figure from docs/benchmarks.md
        begins = self.run_at if self.status == Status.SCHEDULED and self.run_at and self.run_at > now else now
        return begins + timedelta(seconds=remaining / rate)


class BulkOperationItem(models.Model):
    # No index of its own: (operation, position) is unique, hence indexed, and leads with it.
    # No constraint in PostgreSQL either: its check runs once per inserted row, half the time
    # of writing a million items; why nothing is lost by it: docs/engine.md "The items table".
    operation = models.ForeignKey(
        BulkOperation, on_delete=models.CASCADE, related_name="items", db_index=False, db_constraint=False
    )
    position = models.PositiveIntegerField()
    target_id = models.CharField(max_length=255)  # an import's match value: an external id
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    error_code = models.CharField(max_length=30, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    # Per-item operation data, when items differ (collection PATCH, revert); else operation_data.
    payload = models.JSONField(null=True, blank=True)
    before = models.JSONField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["operation", "position"], name="unique_item_position")]
        # Items by outcome (failed, skipped: the items list, its CSV, a retry). Pending items are
        # not in it: they are found by position, and a new operation's million items then
        # cost this index nothing when they are written.
        indexes = [
            models.Index(
                fields=["operation", "status"], name="item_outcome", condition=~models.Q(status=ItemStatus.PENDING)
            )
        ]


class WebhookSecret(models.Model):
    """The key a user's completion webhooks are signed with (`X-Bulkops-Signature`)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret")
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"webhook secret of {self.user}"
