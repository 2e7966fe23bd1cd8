"""What every domain's audit trail has in common: one row per changed field of one record,
with who changed it, in which bulk operation and why (SPEC §2.1, §11). A domain's event
model adds the foreign key to its record."""

from dataclasses import make_dataclass
from functools import cache

from django.conf import settings
from django.db import models

COLUMNS = ("actor", "bulk_operation", "field", "old_value", "new_value", "reason", "created_at")


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


def columns(model):
    """The columns an audit row of `model` writes: its record's foreign key, then the common ones."""
    (record,) = (f.name for f in model._meta.concrete_fields if not f.primary_key and f.name not in COLUMNS)
    return [record, *COLUMNS]


@cache
def row_type(model):
    """The class of unsaved audit rows of `model`, built positionally in `columns` order and
    written by bulkops.sql.insert_rows: the engine makes one per changed field, and a slots
    dataclass costs a fraction of a model instance."""
    names = [model._meta.get_field(name).attname for name in columns(model)]
    return make_dataclass(f"{model.__name__}Row", names, slots=True)
