"""The only rq entry points. Each is small: the work lives in runner and services."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from rq.job import JobStatus

from . import retention, runner
from .models import BulkOperation, Status

log = logging.getLogger("bulkops")
QUEUE = "bulkops"
WAITING_OR_RUNNING = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def queue():
    return django_rq.get_queue(QUEUE)


def run_slice(op_id, number):
    runner.run_slice(op_id, number)


def enqueue_slices(op_id, slices, *, suffix=""):
    """One job per slice, with a fixed id so that a duplicate enqueue replaces, not repeats."""
    q = queue()
    for number in range(slices):
        job_id = f"bulkop-{op_id}-{number}{suffix}"
        existing = q.fetch_job(job_id)
        if existing is not None and existing.get_status(refresh=False) in WAITING_OR_RUNNING:
            continue
        q.enqueue(run_slice, str(op_id), number, job_id=job_id, failure_ttl=86400)


def recover_stale():
    """Resume every operation whose heartbeat stopped (a killed worker, a lost queue)."""
    cutoff = timezone.now() - timedelta(seconds=settings.BULKOPS_STALE_AFTER)
    stale = BulkOperation.objects.filter(
        Q(status__in=[Status.IN_PROGRESS, Status.CANCELLING], heartbeat_at__lt=cutoff)
        | Q(status=Status.PENDING, execution="async", created_at__lt=cutoff)
    )
    resumed = []
    for op in stale.only("pk", "slices", "status", "heartbeat_at"):
        # Claim it first, so that two recoverers running at once enqueue it only once.
        if BulkOperation.objects.filter(pk=op.pk, status=op.status, heartbeat_at=op.heartbeat_at).update(
            heartbeat_at=timezone.now()
        ):
            log.warning("resuming stale operation", extra={"operation_id": str(op.pk)})
            enqueue_slices(op.pk, op.slices, suffix=f"-r{int(timezone.now().timestamp())}")
            resumed.append(op.pk)
    return resumed


def maintenance():
    """What every worker runs periodically (bulkops_worker): resume stale operations, then
    delete a bounded number of expired ones."""
    recover_stale()
    retention.delete_old_operations(limit=100)
