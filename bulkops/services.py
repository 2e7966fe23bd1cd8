"""Starting and cancelling operations: what the API, pages and admin call.

Reverting and retrying them is bulkops/followups.py; the helpers at the end are what the
domain apps' revert operations borrow."""

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from . import conf, errors, jobs, runner
from .models import BulkOperation, BulkOperationItem, Execution, ItemStatus, Mode, Status

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
    max_items_per_second: int | None = None
    dry_run: bool = False
    callback_url: str = ""
    reverts: BulkOperation | None = None
    retry_of: BulkOperation | None = None


def fingerprint(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def slice_count(total):
    """A few large slices: rq forks per job, so never one job per chunk."""
    return max(1, min(conf.MAX_SLICES, math.ceil(total / conf.SLICE_MIN_ITEMS)))


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
    if existing.created_at < timezone.now() - timedelta(hours=conf.IDEMPOTENCY_HOURS):
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
        op, created = create_operation(
            user,
            request,
            total_items=len(request.ids),
            idempotency_key=idempotency_key,
            body_fingerprint=body_fingerprint,
        )
        if not created:
            return op, False
        insert_items(op, request.ids, request.payloads)
        launch(op)
    return finish_launch(op), True


def create_operation(user, request, *, total_items, idempotency_key=None, body_fingerprint=""):
    """The operation row (inside the caller's transaction), or the one an earlier request with
    the same Idempotency-Key made: (operation, created). Its items are the caller's to write."""
    lock_user(user)
    if idempotency_key:
        existing = find_idempotent(user, idempotency_key, body_fingerprint)
        if existing:
            return existing, False
    if BulkOperation.objects.filter(user=user).active().count() >= conf.MAX_ACTIVE_PER_USER:
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
        total_items=total_items,
        batch_size=request.batch_size,
        max_items_per_second=request.max_items_per_second,
        slices=1 if sync or request.mode == Mode.ATOMIC else slice_count(total_items),
        idempotency_key=idempotency_key or None,
        fingerprint=body_fingerprint,
        callback_url=request.callback_url,
        reverts=request.reverts,
        retry_of=request.retry_of,
    )
    return op, True


def launch(op):
    """Once the operation and all its items are written (inside the same transaction): an
    async operation is enqueued when it commits."""
    if op.execution != Execution.SYNC:
        transaction.on_commit(partial(jobs.enqueue_operation, op.pk, op.slices))


def finish_launch(op):
    """After the commit: log it, and run a sync operation here, in the request."""
    log.info(
        "operation created",
        extra={
            "operation_id": str(op.pk),
            "user_id": op.user_id,
            "operation_type": op.operation_type,
            "total_items": op.total_items,
        },
    )
    if op.execution == Execution.SYNC:
        run_now(op)
        op.refresh_from_db()
    return op


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
    """pending or paused ⇒ cancelled at once; running ⇒ cancelling (workers stop at the next chunk)."""
    with transaction.atomic():
        op = BulkOperation.objects.visible_to(user).select_for_update().filter(pk=op_id).first()
        if op is None:
            raise errors.NotFound("Bulk operation not found")
        if op.is_finished:
            raise errors.Conflict(f"Operation already {op.status}")
        # Nothing runs a paused operation, but a slice may still be ending its last chunk:
        # skip_pending waits for that chunk's item locks, then skips what is still pending.
        was_pending = op.status in (Status.PENDING, Status.PAUSED)
        if op.status != Status.CANCELLING:
            op.status, op.cancelled_at = Status.CANCELLING, timezone.now()
            op.save(update_fields=["status", "cancelled_at"])
            log.info("operation cancelling", extra={"operation_id": str(op.pk), "user_id": user.pk})
    if was_pending:
        runner.skip_pending(op, 0, op.total_items)
        op = runner.finalize(op.pk)
    return op


# --- what the domain apps' revert operations borrow ------------------------------------


def restore_payload(before, result):
    """A revert item's data: the old field values, and what the record must still hold.

    None when the original item changed nothing there is to put back. `after` (the values the
    original set) makes the conflict rule per field; items recorded before it was kept carry
    only the version their record must still be at."""
    fields = {name: value for name, value in (before or {}).items() if name != "version"}
    if not fields or not (result or {}).get("changed"):
        return None
    payload = {"fields": fields, "version": result["version"]}
    if "after" in result:
        payload["after"] = result["after"]
    return payload


def json_safe(values):
    """`values` as JSON would give them back (datetimes as text); the usual case costs nothing."""
    if all(value is None or isinstance(value, (str, int, bool)) for value in values.values()):
        return values
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def check_unmoved(record, after, noun):
    """Refuse a revert of `record` when a field the original operation set holds another value
    now: a later change to another field (a new title) does not stand in the way."""
    current = json_safe({name: getattr(record, name) for name in after})
    moved = sorted(name.removesuffix("_id") for name in after if current[name] != after[name])
    if moved:
        raise errors.Conflict(f"{noun} {record.pk}: {', '.join(moved)} changed since")


def replayed(user, idempotency_key, body_fingerprint):
    """The operation an earlier request with this Idempotency-Key made, before any other check."""
    return find_idempotent(user, idempotency_key, body_fingerprint) if idempotency_key else None
