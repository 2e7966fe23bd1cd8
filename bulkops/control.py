"""Control of a running operation by its owner (or staff): pause, resume, throttle.

Each change is made under a lock on the operation's row, the one `finalize` takes, so it
races the last chunk cleanly: an operation that finished first answers 409, and one paused
just before its last chunk ended still finishes (nothing is left to pause). Status changes
no chunk reports are announced with `signals.status_changed` once they commit.
"""

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from . import errors, jobs, signals
from .models import BulkOperation, Execution, Mode, Status

log = logging.getLogger("bulkops")

PAUSABLE = (Status.PENDING, Status.IN_PROGRESS)


def locked(user, op_id):
    """The operation `user` owns (staff: any), its row locked until the caller's transaction ends:
    an approver who may see it does not control it."""
    op = BulkOperation.objects.owned_by(user).select_for_update().filter(pk=op_id).first()
    if op is None:
        raise errors.NotFound("Bulk operation not found")
    return op


def check_controllable(op, verb):
    """Only async partial operations run chunk by chunk in jobs: a sync one runs inside its
    request, an atomic one in a single transaction, neither with a boundary to act at."""
    if op.execution == Execution.SYNC or op.mode == Mode.ATOMIC:
        raise errors.Conflict(f"Only async partial operations can be {verb}")


def announce_on_commit(op, event, user):
    log.info(f"operation {event}", extra={"operation_id": str(op.pk), "user_id": user.pk})
    transaction.on_commit(lambda: signals.status_changed.send(BulkOperation, op=op))


def pause_operation(user, op_id):
    """pending or in_progress ⇒ paused. Each slice stops at the end of the chunk it is in (the
    status comes back from its counter update) and its job ends: no worker, no row lock."""
    with transaction.atomic():
        op = locked(user, op_id)
        if op.status not in PAUSABLE:
            raise errors.Conflict(f"Operation is {op.status}; only a pending or running one can be paused")
        check_controllable(op, "paused")
        op.status, op.paused_at = Status.PAUSED, timezone.now()
        op.save(update_fields=["status", "paused_at"])
        announce_on_commit(op, "paused", user)
    return op


def resume_operation(user, op_id):
    """paused ⇒ in_progress, and a job for each slice whose job rq will not run, enqueued after
    commit under a new generation (jobs.enqueue_slices): a slice still finishing its last chunk
    keeps its job, and should it go on beside the new one, the claims share the items."""
    with transaction.atomic():
        op = locked(user, op_id)
        if op.status != Status.PAUSED:
            raise errors.Conflict(f"Operation is {op.status}; only a paused one can be resumed")
        now = timezone.now()
        op.status, op.paused_at, op.heartbeat_at = Status.IN_PROGRESS, None, now
        op.started_at = op.started_at or now
        op.save(update_fields=["status", "paused_at", "heartbeat_at", "started_at"])
        # If Redis fails then, the operation is in progress with no job: recovery enqueues it.
        transaction.on_commit(partial(jobs.enqueue_operation, op.pk, op.slices, pending=False))
        announce_on_commit(op, "resumed", user)
    return op


def change_operation(user, op_id, **changes):
    """What `PATCH …/{id}/` may change on an unfinished operation: its throttle
    (`max_items_per_second`, None for none). Its slices read the rate before each chunk
    (bulkops/pacing.py), so a change applies from the next chunk. No change given: the
    operation as it is."""
    with transaction.atomic():
        op = locked(user, op_id)
        if op.is_finished:
            raise errors.Conflict(f"Operation already {op.status}")
        if changes:
            check_controllable(op, "throttled")
            for name, value in changes.items():
                setattr(op, name, value)
            op.save(update_fields=list(changes))
            log.info("operation changed", extra={"operation_id": str(op.pk), "user_id": user.pk, **changes})
    return op
