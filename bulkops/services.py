"""Starting, cancelling, reverting and retrying operations: what the API, pages and admin call."""

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from . import errors, jobs, registry, runner
from .models import ACTIVE, BulkOperation, BulkOperationItem, Execution, ItemStatus, Mode, Status

log = logging.getLogger("bulkops")


@dataclass
class Request:
    """A validated request to change many records (the API serializer builds it)."""

    resource_type: str
    operation_type: str
    ids: list
    operation_data: dict = field(default_factory=dict)
    payloads: list | None = None  # per-item data, when items differ
    metadata: dict = field(default_factory=dict)
    mode: str = Mode.PARTIAL
    execution: str = Execution.ASYNC
    batch_size: int = 50
    dry_run: bool = False
    callback_url: str = ""
    reverts: BulkOperation | None = None
    retry_of: BulkOperation | None = None


def fingerprint(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def slice_count(total):
    """A few large slices: rq forks per job, so never one job per chunk."""
    return max(1, min(settings.BULKOPS_MAX_SLICES, math.ceil(total / settings.BULKOPS_SLICE_MIN_ITEMS)))


def insert_items(op, ids, payloads=None):
    """All items in one statement: 100,000 rows in well under a second."""
    targets = [str(i) for i in ids]
    if connection.vendor != "postgresql":
        BulkOperationItem.objects.bulk_create(
            BulkOperationItem(operation=op, position=n, target_id=t, payload=payloads[n] if payloads else None)
            for n, t in enumerate(targets)
        )
        return
    if payloads:  # items that differ carry their own data
        source, payload, params = (
            "unnest(%s::text[], %s::text[])",
            "t.payload::jsonb",
            [targets, [json.dumps(p) for p in payloads]],
        )
        columns = "t(target_id, payload, ord)"
    else:
        source, payload, params, columns = "unnest(%s::text[])", "NULL", [targets], "t(target_id, ord)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BulkOperationItem._meta.db_table} "
            "(operation_id, position, target_id, payload, status, error_code, error_message, attempts) "
            f"SELECT %s, t.ord - 1, t.target_id, {payload}, %s, '', '', 0 FROM {source} WITH ORDINALITY AS {columns}",
            [op.pk, ItemStatus.PENDING, *params],
        )


def find_idempotent(user, key, body_fingerprint):
    """The operation an earlier request with this key created, if within the window."""
    existing = BulkOperation.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.created_at < timezone.now() - timedelta(hours=settings.BULKOPS_IDEMPOTENCY_HOURS):
        BulkOperation.objects.filter(pk=existing.pk).update(idempotency_key=None)  # expired: free the key
        return None
    if existing.fingerprint != body_fingerprint:
        raise errors.IdempotencyKeyReused()
    return existing


def lock_user(user):
    """Serialise a user's operation starts across processes, so that the active cap holds."""
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()


def start_operation(user, request, *, idempotency_key=None, body_fingerprint=""):
    """Store the operation and its items; run it now (sync) or after commit (async).

    Returns (operation, created). The active-operation cap is checked under a lock on the
    user's row, so that it holds across processes.
    """
    with transaction.atomic():
        lock_user(user)
        if idempotency_key:
            existing = find_idempotent(user, idempotency_key, body_fingerprint)
            if existing:
                return existing, False
        if BulkOperation.objects.filter(user=user).active().count() >= settings.BULKOPS_MAX_ACTIVE_PER_USER:
            raise errors.TooManyActive()
        sync = request.execution == Execution.SYNC
        op = BulkOperation.objects.create(
            user=user,
            resource_type=request.resource_type,
            operation_type=request.operation_type,
            operation_data=request.operation_data,
            metadata=request.metadata,
            mode=request.mode,
            execution=request.execution,
            dry_run=request.dry_run,
            total_items=len(request.ids),
            batch_size=request.batch_size,
            slices=1 if sync or request.mode == Mode.ATOMIC else slice_count(len(request.ids)),
            idempotency_key=idempotency_key or None,
            fingerprint=body_fingerprint,
            callback_url=request.callback_url,
            reverts=request.reverts,
            retry_of=request.retry_of,
        )
        insert_items(op, request.ids, request.payloads)
        if not sync:
            transaction.on_commit(partial(jobs.enqueue_operation, op.pk, op.slices))
    log.info(
        "operation created",
        extra={
            "operation_id": str(op.pk),
            "user_id": user.pk,
            "operation_type": op.operation_type,
            "total_items": op.total_items,
        },
    )
    if sync:
        run_now(op)
        op.refresh_from_db()
    return op, True


def run_now(op):
    """Process a synchronous operation inside the request, in this process."""
    for number in range(op.slices):
        runner.run_slice(op.pk, number)  # each finalises when nothing is left


def get_operation(user, op_id):
    op = BulkOperation.objects.visible_to(user).filter(pk=op_id).first()
    if op is None:
        raise errors.NotFound("Bulk operation not found")
    return op


def cancel_operation(user, op_id):
    """pending ⇒ cancelled at once; running ⇒ cancelling (workers stop at the next chunk)."""
    with transaction.atomic():
        op = BulkOperation.objects.visible_to(user).select_for_update().filter(pk=op_id).first()
        if op is None:
            raise errors.NotFound("Bulk operation not found")
        if op.is_finished:
            raise errors.Conflict(f"Operation already {op.status}")
        was_pending = op.status == Status.PENDING
        if op.status != Status.CANCELLING:
            op.status, op.cancelled_at = Status.CANCELLING, timezone.now()
            op.save(update_fields=["status", "cancelled_at"])
            log.info("operation cancelling", extra={"operation_id": str(op.pk), "user_id": user.pk})
    if was_pending:
        runner.skip_pending(op, 0, op.total_items)
        op = runner.finalize(op.pk)
    return op


# --- operations that follow another: revert and retry ------------------------------------

REVERT = "revert"  # the operation each resource registers to undo its others


def restore_payload(before, result):
    """A revert item's data: the old field values, and the version the record must still be at.

    None when the original item changed nothing there is to put back."""
    fields = {name: value for name, value in (before or {}).items() if name != "version"}
    if not fields or not (result or {}).get("changed"):
        return None
    return {"fields": fields, "version": result["version"]}


def check_finished(op, verb):
    if not op.is_finished:
        raise errors.Conflict(f"Operation is {op.status}; it can be {verb} once it has finished")


def lock_original(original, verb, followers):
    """Lock the original operation's row and refuse a second revert (or retry) of it.

    Under this lock, requests from any number of users and processes see each other: the
    first makes the follow-up, every other one gets 409 naming it. A follow-up that failed or
    was cancelled does not count, so it can be made again."""
    BulkOperation.objects.select_for_update().filter(pk=original.pk).first()
    earlier = followers.filter(dry_run=False, status__in=[*ACTIVE, Status.COMPLETED, Status.PARTIAL]).first()
    if earlier is not None:
        raise errors.Conflict(f"Operation is already {verb} by {earlier.pk}")


def replayed(user, idempotency_key, body_fingerprint):
    """The operation an earlier request with this Idempotency-Key made, before any other check."""
    return find_idempotent(user, idempotency_key, body_fingerprint) if idempotency_key else None


def revert_operation(user, op_id, *, metadata=None, callback_url="", idempotency_key=None, body_fingerprint=""):
    """A new async operation that puts back what `op_id` changed, item by item.

    Each item carries what to restore and the version its record must still be at; records
    changed since fail CONFLICT. Returns (operation, created) as start_operation does."""
    existing = replayed(user, idempotency_key, body_fingerprint)
    if existing:
        return existing, False
    original = get_operation(user, op_id)
    check_finished(original, "reverted")
    if original.dry_run:
        raise errors.Conflict("A dry run changed nothing; there is nothing to revert")
    definition = registry.get(original.resource_type, REVERT)
    if definition is None:
        raise errors.Conflict(f"Operations on {original.resource_type} cannot be reverted")
    with transaction.atomic():
        lock_original(original, "reverted", original.reverted_by)
        request = revert_request(original, definition, metadata, callback_url)
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def revert_request(original, definition, metadata, callback_url):
    """The revert of `original`: one item per succeeded item that changed something."""
    ids, payloads = [], []
    rows = original.items.filter(status=ItemStatus.SUCCEEDED).order_by("position")
    for target_id, before, result in rows.values_list("target_id", "before", "result").iterator(chunk_size=5000):
        payload = definition.revert_payload(before or {}, result or {})
        if payload is not None:
            ids.append(target_id)
            payloads.append(payload)
    if not ids:
        raise errors.Conflict("Nothing to revert: no item of this operation changed anything")
    return Request(
        resource_type=original.resource_type,
        operation_type=REVERT,
        ids=ids,
        payloads=payloads,
        metadata=metadata or {"description": f"Revert of bulk operation {original.pk}"},
        batch_size=original.batch_size,
        callback_url=callback_url,
        reverts=original,
    )


def retry_operation(user, op_id, *, metadata=None, callback_url="", idempotency_key=None, body_fingerprint=""):
    """A new async operation over exactly the items of `op_id` that failed: same type and data."""
    existing = replayed(user, idempotency_key, body_fingerprint)
    if existing:
        return existing, False
    original = get_operation(user, op_id)
    check_finished(original, "retried")
    if registry.get(original.resource_type, original.operation_type) is None:
        raise errors.Conflict(f"{original.operation_type} operations on {original.resource_type} cannot be retried")
    with transaction.atomic():
        lock_original(original, "retried", original.retried_by)
        request = retry_request(original, metadata, callback_url)
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def retry_request(original, metadata, callback_url):
    """The retry of `original`: its failed items, with the same type and data."""
    failed = original.items.filter(status=ItemStatus.FAILED).order_by("position")
    ids, payloads = [], []
    for target_id, payload in failed.values_list("target_id", "payload").iterator(chunk_size=5000):
        ids.append(target_id)
        payloads.append(payload)
    if not ids:
        raise errors.Conflict("Nothing to retry: no item of this operation failed")
    return Request(
        resource_type=original.resource_type,
        operation_type=original.operation_type,
        ids=ids,
        operation_data=original.operation_data,
        payloads=payloads if any(p is not None for p in payloads) else None,
        metadata=metadata or original.metadata,
        mode=original.mode,
        batch_size=original.batch_size,
        dry_run=original.dry_run,
        callback_url=callback_url,
        retry_of=original,
    )
