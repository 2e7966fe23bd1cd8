"""Deleting old finished operations: `manage.py cleanup_bulk_operations` and the workers'
periodic maintenance job both call `delete_old_operations`.

Items go in chunks, each its own statement, so an operation of 100,000 items never sits in
memory nor holds one long transaction. Audit rows and comments keep their history: their
link to a deleted operation becomes NULL (the foreign keys say SET_NULL).
"""

import logging
import re
from datetime import timedelta

from django.utils import timezone

from . import conf
from .models import FINISHED, BulkOperation, BulkOperationItem

log = logging.getLogger("bulkops")
ITEM_CHUNK = 5_000
OPERATION_CHUNK = 100
AGE = re.compile(r"^(\d+)([dh])$")


def parse_age(text):
    """`30d` or `12h` ⇒ a timedelta; ValueError otherwise."""
    match = AGE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an age such as 30d or 12h")
    number, unit = int(match[1]), match[2]
    return timedelta(days=number) if unit == "d" else timedelta(hours=number)


def delete_old_operations(older_than=None, *, limit=None):
    """Delete finished operations created more than `older_than` ago (default
    BULKOPS_RETENTION_DAYS), at most `limit` of them, with their items.

    Returns (operations, items) deleted."""
    cutoff = timezone.now() - (older_than or timedelta(days=conf.RETENTION_DAYS))
    old = BulkOperation.objects.filter(status__in=FINISHED, created_at__lt=cutoff).order_by("created_at")
    operations = items = 0
    while limit is None or operations < limit:
        size = OPERATION_CHUNK if limit is None else min(OPERATION_CHUNK, limit - operations)
        chunk = list(old.values_list("pk", flat=True)[:size])
        if not chunk:
            break
        items += delete_items(chunk)
        operations += BulkOperation.objects.filter(pk__in=chunk).delete()[1].get(BulkOperation._meta.label, 0)
    if operations:
        log.info("old operations deleted", extra={"operations": operations, "items": items, "cutoff": cutoff})
    return operations, items


def delete_items(op_ids):
    deleted = 0
    while True:
        chunk = BulkOperationItem.objects.filter(operation_id__in=op_ids).values("pk")[:ITEM_CHUNK]
        count = BulkOperationItem.objects.filter(pk__in=chunk).delete()[0]
        if not count:
            return deleted
        deleted += count
