from django.conf import settings
from django.db import models
from django.db.models import Q

from bulkops.audit import AuditEvent


class Status(models.TextChoices):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(models.TextChoices):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


# The allowed status transitions (SPEC §2.1); `closed` is terminal.
TRANSITIONS = {
    Status.OPEN: {Status.IN_PROGRESS, Status.PENDING, Status.RESOLVED, Status.CLOSED},
    Status.IN_PROGRESS: {Status.OPEN, Status.PENDING, Status.RESOLVED, Status.CLOSED},
    Status.PENDING: {Status.OPEN, Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED},
    Status.RESOLVED: {Status.OPEN, Status.CLOSED},
    Status.CLOSED: set(),
}


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self):
        return self.name


def is_agent(user):
    return user.is_staff or user.has_perm("tickets.change_ticket")


class TicketQuerySet(models.QuerySet):
    def visible_to(self, user, *, include_deleted=False):
        """What `user` may see: staff everything, agents every live ticket, others their own."""
        qs = self if include_deleted or user.is_staff else self.filter(is_deleted=False)
        if is_agent(user):
            return qs
        return qs.filter(Q(requester=user) | Q(assignee=user))


UNIQUE_EXTERNAL_ID = "unique_ticket_external_id"  # the constraint: an external id is unique when set


class Ticket(models.Model):
    title = models.CharField(max_length=200)
    # The key a client's own system uses for the ticket (imports match on it): unique when set.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    # PROTECT: clearing the category of every ticket would change them without version or audit row.
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.PROTECT)
    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requested_tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    version = models.PositiveIntegerField(default=1)
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TicketQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        # assignee, requester and category have their foreign-key indexes already; every
        # index costs each non-HOT update of a ticket one more insertion.
        indexes = [models.Index(fields=["status", "priority"])]
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"], condition=Q(external_id__isnull=False), name=UNIQUE_EXTERNAL_ID
            )
        ]

    def __str__(self):
        return f"#{self.pk} {self.title}"


class Comment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    body = models.TextField()
    bulk_operation = models.ForeignKey("bulkops.BulkOperation", null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]


class TicketEvent(AuditEvent):
    """One changed field of one ticket: the audit trail."""

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
