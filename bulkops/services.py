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
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count
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


def check_finished(op, verb):
    if not op.is_finished:
        raise errors.Conflict(f"Operation is {op.status}; it can be {verb} once it has finished")


def lock_original(original, verb, followers):
    """Lock the original operation's row and refuse a second revert (or retry) of it.

    Under this lock, requests from any number of users and processes see each other: the
    first makes the follow-up, every other one gets 409 naming it. A follow-up that failed or
    was cancelled does not count, so it can be made again."""
    BulkOperation.objects.select_for_update().filter(pk=original.pk).first()
    earlier = done_follow_up(followers)
    if earlier is not None:
        raise errors.Conflict(f"Operation is already {verb} by {earlier.pk}")


def done_follow_up(followers):
    """The follow-up (revert or retry) among `followers` that counts as done: one that is not a
    dry run and did not fail or get cancelled. Pages hide the button once there is one."""
    return followers.filter(dry_run=False, status__in=[*ACTIVE, Status.COMPLETED, Status.PARTIAL]).first()


def replayed(user, idempotency_key, body_fingerprint):
    """The operation an earlier request with this Idempotency-Key made, before any other check."""
    return find_idempotent(user, idempotency_key, body_fingerprint) if idempotency_key else None


def revert_operation(
    user, op_id, *, metadata=None, callback_url="", dry_run=False, idempotency_key=None, body_fingerprint=""
):
    """A new async operation that puts back what `op_id` changed, item by item.

    Each item carries what to restore and the values its record must still hold; a record
    whose restored fields changed since fails CONFLICT. `dry_run` previews it: a dry-run
    revert reports what would be restored and what conflicts, and does not count as the
    revert. Returns (operation, created) as start_operation does."""
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
        request = revert_request(original, definition, metadata, callback_url, dry_run)
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def revert_request(original, definition, metadata, callback_url, dry_run):
    """The revert of `original`: one item per succeeded item that changed something."""
    ids, payloads = [], []
    rows = original.items.filter(status=ItemStatus.SUCCEEDED).order_by("position")
    for target_id, before, result in rows.values_list("target_id", "before", "result").iterator(chunk_size=5000):
        payload = definition.resource.revert_payload(before or {}, result or {})
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
        dry_run=dry_run,
        callback_url=callback_url,
        reverts=original,
    )


# Failures a retry can change: the record was busy, moved, missing or cancelled then. The
# others (PERMISSION_DENIED, INVALID_TRANSITION, VALIDATION_ERROR) fail the same way again
# unless something else changes first, so a retry takes them only when asked by `codes`.
RETRYABLE = (
    errors.LOCK_TIMEOUT,
    errors.CONFLICT,
    errors.INTERNAL_ERROR,
    errors.CANCELLED,
    errors.ROLLED_BACK,
    errors.NOT_FOUND,
)
RETRIED_STATUSES = (ItemStatus.FAILED, ItemStatus.SKIPPED)  # skipped: cancelled before their turn


def retry_choices(op):
    """{error code: item count} of what a retry of `op` could take, retryable codes first."""
    counts = dict(
        op.items.filter(status__in=RETRIED_STATUSES)
        .exclude(error_code="")
        .values_list("error_code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(sorted(counts.items(), key=lambda pair: (pair[0] not in RETRYABLE, pair[0])))


def retry_operation(
    user, op_id, *, metadata=None, callback_url="", codes=None, idempotency_key=None, body_fingerprint=""
):
    """A new async operation over the items of `op_id` that failed with one of `codes`
    (default RETRYABLE): same type and data. 409 when no item matches."""
    existing = replayed(user, idempotency_key, body_fingerprint)
    if existing:
        return existing, False
    original = get_operation(user, op_id)
    check_finished(original, "retried")
    if registry.get(original.resource_type, original.operation_type) is None:
        raise errors.Conflict(f"{original.operation_type} operations on {original.resource_type} cannot be retried")
    with transaction.atomic():
        lock_original(original, "retried", original.retried_by)
        request = retry_request(original, metadata, callback_url, codes or RETRYABLE)
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def retry_request(original, metadata, callback_url, codes):
    """The retry of `original`: its items that failed with one of `codes`, same type and data."""
    failed = original.items.filter(status__in=RETRIED_STATUSES, error_code__in=codes).order_by("position")
    ids, payloads = [], []
    for target_id, payload in failed.values_list("target_id", "payload").iterator(chunk_size=5000):
        ids.append(target_id)
        payloads.append(payload)
    if not ids:
        raise errors.Conflict(f"Nothing to retry: no item of this operation failed with {', '.join(sorted(codes))}")
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
