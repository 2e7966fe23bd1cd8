"""What every domain's audit trail has in common: one row per changed field of one record,
with who changed it, in which bulk operation and why (SPEC §2.1, §11). A domain's event
model adds the foreign key to its record."""

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    bulk_operation = models.ForeignKey("bulkops.BulkOperation", null=True, blank=True, on_delete=models.SET_NULL)
    field = models.CharField(max_length=50)
    old_value = models.TextField(null=True, blank=True)
    new_value = models.TextField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["created_at", "id"]
