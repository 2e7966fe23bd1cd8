"""The only rq entry points. Each is small: the work lives in runner and services."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq.job import Job, JobStatus

from . import retention, runner
from .models import BulkOperation, Execution, Status

log = logging.getLogger("bulkops")
QUEUE = "bulkops"
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
SWEEP_LOCK = "bulkops:sweep"


def queue():
    return django_rq.get_queue(QUEUE)


def job_id(op_id, number):
    return f"bulkop-{op_id}-{number}"


def run_slice(op_id, number):
    # Every slice job may run the sweep, so that recovery also happens under a plain rq worker.
    sweep_if_due()
    runner.run_slice(op_id, number)


def enqueue_slices(op_id, slices, *, replace_started=False):
    """One job per slice under a fixed id.

    A slice whose job waits in rq, or runs, is left alone, so a duplicate enqueue adds nothing.
    `replace_started` also replaces a job rq still shows as started: the caller knows it died."""
    q = queue()
    for number in range(slices):
        existing = q.fetch_job(job_id(op_id, number))
        if existing is not None:
            status = existing.get_status(refresh=False)
            if status in WAITING or (status == JobStatus.STARTED and not replace_started):
                continue
            # Out of every registry first: else rq's cleanup of the dead one would later take
            # the new job under this id for abandoned.
            existing.delete()
        q.enqueue(run_slice, str(op_id), number, job_id=job_id(op_id, number), failure_ttl=86400)


def enqueue_operation(op_id, slices):
    """After the operation commits. If Redis fails here the request still succeeds: the
    committed `pending` operation is itself the outbox entry, and the next sweep enqueues it."""
    try:
        enqueue_slices(op_id, slices)
    except RedisError as exc:
        log.warning("enqueue failed; the workers' sweep will enqueue it: %s", exc, extra={"operation_id": str(op_id)})


def job_statuses(op):
    """rq's view of each slice's job, in one round trip (None: rq has no such job)."""
    q = queue()
    ids = [job_id(op.pk, number) for number in range(op.slices)]
    found = Job.fetch_many(ids, connection=q.connection, serializer=q.serializer)
    return [job.get_status(refresh=False) if job is not None else None for job in found]


def is_lost(op, statuses):
    """Whether no rq job will run the operation's remaining items.

    Pending: some slice has no job waiting or started (the enqueue after commit failed, or
    Redis lost the job). Running, with a heartbeat older than BULKOPS_STALE_AFTER: no slice
    job is waiting — a waiting one would take over every item left when it runs — and a job rq
    shows as started is dead, since a live slice beats at every chunk."""
    if op.status == Status.PENDING:
        return any(status not in WAITING and status != JobStatus.STARTED for status in statuses)
    return not any(status in WAITING for status in statuses)


def recover_stale():
    """Enqueue the operations that no rq job will run; never those merely waiting in a long queue.

    Returns their ids."""
    cutoff = timezone.now() - timedelta(seconds=settings.BULKOPS_STALE_AFTER)
    candidates = BulkOperation.objects.filter(
        Q(status=Status.PENDING, execution=Execution.ASYNC)
        | Q(status__in=[Status.IN_PROGRESS, Status.CANCELLING], heartbeat_at__lt=cutoff)
    ).only("pk", "slices", "status", "heartbeat_at")
    resumed = []
    for op in candidates:
        if not is_lost(op, job_statuses(op)):
            continue
        # Claim it first, so that two recoverers running at once enqueue it only once.
        if BulkOperation.objects.filter(pk=op.pk, status=op.status, heartbeat_at=op.heartbeat_at).update(
            heartbeat_at=timezone.now()
        ):
            log.warning("resuming operation", extra={"operation_id": str(op.pk), "status": op.status})
            enqueue_slices(op.pk, op.slices, replace_started=op.status != Status.PENDING)
            resumed.append(op.pk)
    return resumed


def maintenance():
    """Resume lost operations, then delete a bounded number of expired ones."""
    recover_stale()
    retention.delete_old_operations(limit=100)


def sweep_interval():
    """Seconds between two sweeps: short enough that a resumed operation starts within
    BULKOPS_STALE_AFTER + 15 s of its last heartbeat."""
    return max(1, min(5, settings.BULKOPS_STALE_AFTER // 2))


def sweep_if_due():
    """Run `maintenance` unless another process did less than sweep_interval() ago.

    Every worker calls this periodically and every slice job at its start; a Redis key set
    with NX and an expiry lets one of them through per interval."""
    try:
        if queue().connection.set(SWEEP_LOCK, "1", nx=True, ex=sweep_interval()):
            maintenance()
    except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
        log.exception("maintenance failed")
