"""THE slice loop: chunk after chunk over a slice's range, then over what other slices left,
cancel, atomic mode, and the final status (bulkops/chunks.py does one chunk)."""

import logging
import math
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import conf, errors, registry, signals
from .chunks import (
    CHUNK,
    ROW,
    AtomicCancelled,
    AtomicFailure,
    WriteFailed,
    apply_chunk,
    claim,
    configure_transaction,
    context_for,
    current_status,
    record,
    retrying,
    run_chunk,
)
from .models import BulkOperation, BulkOperationItem, Execution, ItemStatus, Mode, Status
from .sizing import ChunkSizer

log = logging.getLogger("bulkops")


def slice_bounds(op, number):
    size = math.ceil(op.total_items / max(op.slices, 1)) or 1
    return number * size, min((number + 1) * size, op.total_items)


def start(op_id):
    """pending (or scheduled, once its time has come) ⇒ in_progress, once; returns the
    operation, or None if it is not runnable (cancelled, rejected, not yet due)."""
    now = timezone.now()
    BulkOperation.objects.filter(
        Q(status=Status.PENDING) | Q(status=Status.SCHEDULED, run_at__lte=now), pk=op_id
    ).update(status=Status.IN_PROGRESS, started_at=now, heartbeat_at=now)
    op = BulkOperation.objects.select_related("user").get(pk=op_id)
    if op.status == Status.IN_PROGRESS and op.started_at == now:
        log_started(op)
        if op.run_at is not None:  # nobody was told it would start now: no chunk says so yet
            announce(op)
    return op if op.status in (Status.IN_PROGRESS, Status.CANCELLING) else None


def log_started(op):
    log.info("operation started", extra={"operation_id": str(op.pk), "user_id": op.user_id})


def announce(op):
    """Tell the subscribers of a status change no chunk reports, once it commits."""
    transaction.on_commit(lambda: signals.status_changed.send(BulkOperation, op=op))


def run_slice(op_id, number, *, pace=None, cursor=None, taking_over=False, op=None):
    """Process slice `number` of an operation chunk by chunk, then take over what its siblings
    left pending; the last slice to finish finalises.

    `pace` (bulkops/pacing.py) ends the slice when its time is up or its tokens are far off:
    it then returns where to go on (a `Continuation`), and finalises nothing. A continuation
    passes `cursor` and `taking_over` back in.

    `op`: a sync operation, created in progress by the request that runs it
    (services.run_now). It is run as it is in memory, with no start to write or read back,
    and `finalize` brings that same instance up to date."""
    if op is None:
        op = start(op_id)
        if op is None:
            return None
    else:
        log_started(op)
    definition = registry.get(op.resource_type, op.operation_type)
    ctx = context_for(op)
    if op.mode == Mode.ATOMIC:
        if op.status == Status.CANCELLING:  # cancelled just as this worker picked it up
            skip_pending(op, 0, op.total_items)
        else:
            run_atomic(op, definition, ctx)
    else:
        status = op.status
        if not taking_over:
            lo, hi = slice_bounds(op, number)
            status, _, stopped = run_range(op, definition, ctx, lo if cursor is None else cursor, hi, status, pace)
            if stopped is not None:
                return Continuation(stopped, taking_over=False)
            cursor = 0
        if op.execution != Execution.SYNC:  # a sync operation is one slice, run here: no sibling left anything
            status, stopped = take_over(op, definition, ctx, status, pace, cursor or 0)
            if stopped is not None:
                return Continuation(stopped, taking_over=True)
        if status == Status.CANCELLING:
            skip_pending(op, 0, op.total_items)
    finalize(op.pk, op=op)
    return None


@dataclass(frozen=True)
class Continuation:
    """Where a slice whose pace ended it goes on: from `cursor`, in its own range or taking over."""

    cursor: int
    taking_over: bool


def run_range(op, definition, ctx, lo, hi, status, pace=None):
    """Chunk after chunk over the pending items of positions [lo, hi) while the operation is in
    progress. Returns the operation's status, whether any item was taken, and the position to
    go on from if the pace ended it first (else None)."""
    cursor, taken, sizer = lo, False, ChunkSizer(op.batch_size)
    while status == Status.IN_PROGRESS:
        limit = pace.next_chunk(sizer.limit) if pace else sizer.limit
        if not limit:
            return status, taken, cursor
        started = time.monotonic()
        # From the cursor, not from `lo`: each claim reads ~batch_size index entries
        # instead of stepping over every item done so far.
        positions, status = run_chunk(op, definition, ctx, cursor, hi, sizer, limit=limit)
        if not positions:
            break
        taken, cursor = True, positions[-1] + 1
        seconds = time.monotonic() - started
        log.debug(
            "chunk processed",
            extra={"operation_id": str(op.pk), "user_id": op.user_id, "items": len(positions), "seconds": seconds},
        )
        signals.chunk_committed.send(BulkOperation, op=op, seconds=seconds, last_position=positions[-1])
        if len(positions) < limit or cursor >= hi:
            break  # the range is done (or another slice holds the rest): spare an empty claim
    return status, taken, None


def take_over(op, definition, ctx, status, pace=None, cursor=0):
    """Work stealing: take the items other slices left pending (a killed worker's slice, the
    rest of a slower or still queued one) instead of waiting for them or for recovery.

    Claims skip the items a live slice holds, so each pass over the whole operation takes only
    what nobody holds; the first pass that takes nothing ends it. What a live slice holds then,
    it finishes itself (and should it die too, recovery resumes the operation). Returns the
    status, and where to go on if the pace ended it first (else None)."""
    taken = True
    while status == Status.IN_PROGRESS and taken:
        status, taken, stopped = run_range(op, definition, ctx, cursor, op.total_items, status, pace)
        if stopped is not None:
            return status, stopped
        cursor = 0
    return status, None


def skip_pending(op, lo, hi, code=errors.CANCELLED, message="Operation cancelled"):
    now = timezone.now()
    with transaction.atomic():
        skipped = BulkOperationItem.objects.filter(
            operation_id=op.pk, status=ItemStatus.PENDING, position__gte=lo, position__lt=hi
        ).update(status=ItemStatus.SKIPPED, error_code=code, error_message=message, processed_at=now)
        BulkOperation.objects.filter(pk=op.pk).update(skipped_items=F("skipped_items") + skipped, heartbeat_at=now)


def run_atomic(op, definition, ctx):
    """The whole operation in one transaction; the first failure rolls everything back."""
    try:
        try:
            retrying(apply_all, op, definition, ctx)
        except WriteFailed:
            # A set-based write was refused (a constraint, or a trigger that touches sibling
            # rows): do it again one row per statement, which names the item that fails.
            retrying(apply_all, op, definition, ctx, write=ROW)
    except AtomicFailure as failure:
        mark_rolled_back(op, failure.outcomes)
    except AtomicCancelled:
        skip_pending(op, 0, op.total_items)


def apply_all(op, definition, ctx, *, write=CHUNK):
    """Every chunk in one transaction. The operation row is not touched until the end, so
    that a cancel request never waits for this transaction; it is checked between chunks."""
    with transaction.atomic():
        configure_transaction()
        # Every lock is held to the end anyway: an engine-chosen size is simply the largest.
        # From a cursor: everything before it is taken.
        cursor, limit = 0, op.batch_size or conf.MAX_BATCH_SIZE
        while items := claim(op, cursor, op.total_items, limit):
            outcomes = apply_chunk(op, definition, ctx, items, write=write)
            failures = {i.position: outcomes[i.pk] for i in items if outcomes[i.pk].status == ItemStatus.FAILED}
            if failures:
                raise AtomicFailure(failures)
            record(op, items, outcomes, count=False)
            if current_status(op) == Status.CANCELLING:
                raise AtomicCancelled()
            cursor = items[-1].position + 1
            if cursor >= op.total_items:
                break  # the last item is done: spare an empty claim


def mark_rolled_back(op, failures):
    """Atomic failure: the failing items keep their code, every other item is ROLLED_BACK."""
    now = timezone.now()
    with transaction.atomic():
        items = BulkOperationItem.objects.filter(operation_id=op.pk)
        items.update(
            status=ItemStatus.FAILED,
            error_code=errors.ROLLED_BACK,
            error_message="Rolled back: another item of this atomic operation failed",
            before=None,
            result=None,
            processed_at=now,
        )
        for position, outcome in failures.items():
            items.filter(position=position).update(error_code=outcome.error_code, error_message=outcome.error_message)
        BulkOperation.objects.filter(pk=op.pk).update(
            processed_items=op.total_items,
            successful_items=0,
            failed_items=op.total_items,
            skipped_items=0,
            unchanged_items=0,
            created_items=0,
            updated_items=0,
        )


def final_status(op):
    # A cancel that came after the last item stopped nothing: the operation ends as it ran.
    if op.status == Status.CANCELLING and op.skipped_items:
        return Status.CANCELLED
    if op.error or op.successful_items == 0 and op.total_items:
        return Status.FAILED
    return Status.COMPLETED if op.failed_items == 0 else Status.PARTIAL


def recount(op):
    """Counters from the item rows: whatever happened on the way, they end up equal."""
    counts = {
        status: (n, unchanged)
        for status, n, unchanged in BulkOperationItem.objects.filter(operation_id=op.pk)
        .values_list("status")
        .annotate(n=Count("pk"), unchanged=Count("pk", filter=Q(result__changed=False)))
        .values_list("status", "n", "unchanged")
        .order_by()
    }
    op.successful_items, op.unchanged_items = counts.get(ItemStatus.SUCCEEDED, (0, 0))
    op.failed_items = counts.get(ItemStatus.FAILED, (0, 0))[0]
    op.skipped_items = counts.get(ItemStatus.SKIPPED, (0, 0))[0]
    op.processed_items = op.successful_items + op.failed_items
    counted = op.successful_items and getattr(registry.get(op.resource_type, op.operation_type), "creates", False)
    op.created_items, op.updated_items = import_actions(op) if counted else (0, 0)
    return counts.get(ItemStatus.PENDING, (0, 0))[0]


def import_actions(op):
    """(created, updated) from the item rows of an import (an operation type that `creates`)."""
    succeeded = BulkOperationItem.objects.filter(operation_id=op.pk, status=ItemStatus.SUCCEEDED)
    return succeeded.filter(result__action="created").count(), succeeded.filter(result__action="updated").count()


def fail_pending(op, error):
    BulkOperationItem.objects.filter(operation_id=op.pk, status=ItemStatus.PENDING).update(
        status=ItemStatus.FAILED,
        error_code=errors.INTERNAL_ERROR,
        error_message=error[:500],
        processed_at=timezone.now(),
    )


def finalize(op_id, *, error="", op=None):
    """Close the operation if no item is left pending (or on an operation-level error).

    Returns it as it now is; `op`, when given, is that instance brought up to date (a sync
    run's, so that its request need not read it again)."""
    with transaction.atomic():
        locked = BulkOperation.objects.select_for_update()
        if op is None:
            op = locked.get(pk=op_id)
        else:
            op.refresh_from_db(from_queryset=locked)
        if op.is_finished:
            return op
        if error:
            fail_pending(op, error)
        pending = recount(op)
        if pending and not error:
            op.save(
                update_fields=[
                    "processed_items",
                    "successful_items",
                    "failed_items",
                    "skipped_items",
                    "unchanged_items",
                    "created_items",
                    "updated_items",
                ]
            )
            return op
        op.error = error
        op.status = final_status(op)
        now = timezone.now()
        op.completed_at = now
        if op.status == Status.CANCELLED:
            op.cancelled_at = op.cancelled_at or now
        else:
            op.cancelled_at = None  # a cancel that arrived too late to stop anything
        op.heartbeat_at = now
        op.save()
        transaction.on_commit(lambda: signals.operation_finished.send(BulkOperation, op=op))
    return op
