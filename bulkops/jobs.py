"""The only rq entry points. Each is small: the work lives in runner and services."""

import logging
from datetime import timedelta

import django_rq
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError
from rq.job import Job, JobStatus

from . import conf, pacing, retention, runner
from .models import BulkOperation, Execution, Status

log = logging.getLogger("bulkops")
QUEUE = "bulkops"
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
SWEEP_LOCK = "bulkops:sweep"
SCHEDULER_GRACE = 2  # seconds past a job's time after which rq's scheduler should have moved it


def queue():
    return django_rq.get_queue(QUEUE)


def job_id(op_id, number, generation=0):
    """A slice's job id. A slice that continues (fair share) or is enqueued again (recovery,
    resume) gets the next generation: a job cannot re-enqueue its own id while it runs, and a
    job rq will not run may still be finishing its last chunk — it is never deleted under it."""
    return f"bulkop-{op_id}-{number}" + (f"-g{generation}" if generation else "")


def generations_key(op_id):
    """A Redis hash: slice number ⇒ the generation of its current job (absent: 0). Lost with
    Redis, like the jobs it names: then every slice is at generation 0 and has no job."""
    return f"bulkops:slices:{op_id}"


def run_slice(op_id, number, cursor=None, taking_over=False):
    try:
        pace = pacing.Pace(op_id, conf.SLICE_SECONDS)
        stopped = runner.run_slice(op_id, number, pace=pace, cursor=cursor, taking_over=taking_over)
        if stopped is not None:
            enqueue_slice(op_id, number, next_generation(op_id, number), stopped)
    finally:
        # Every slice job may sweep, so that recovery needs no particular worker class. After
        # the slice, not before: a sweep can take a while, and a pending operation whose job
        # has been started for BULKOPS_STALE_AFTER looks dead to the other sweeps.
        sweep_if_due()


def next_generation(op_id, number):
    connection = queue().connection
    key = generations_key(op_id)
    with connection.pipeline() as pipe:
        pipe.hincrby(key, number, 1)
        pipe.expire(key, timedelta(days=conf.RETENTION_DAYS))
        return pipe.execute()[0]


def enqueue_slice(op_id, number, generation, continuation=None, run_at=None):
    """Enqueue a slice job at the back of the queue; a continuation goes on where it stopped.
    `run_at`: a scheduled operation's time; until then its jobs wait in rq's scheduled
    registry, and rq's scheduler (in every worker) enqueues them when it comes."""
    where = {"cursor": continuation.cursor, "taking_over": continuation.taking_over} if continuation else {}
    options = {**where, "job_id": job_id(op_id, number, generation), "failure_ttl": 86400}
    if run_at is not None and run_at > timezone.now():
        queue().enqueue_at(whole_second(run_at), run_slice, str(op_id), number, **options)
    else:
        queue().enqueue(run_slice, str(op_id), number, **options)


def enqueue_slices(op_id, slices, *, pending=True, run_at=None):
    """Enqueue each slice whose job rq will not run: under its current id if it has no job (a
    duplicate enqueue adds nothing), else under the next generation's. `pending`: whether the
    operation has not started yet (see `will_run`); `run_at`: see `enqueue_slice`."""
    for number, (generation, job) in dead_slices(slice_jobs([(op_id, slices)])[op_id], pending, overdue(run_at)):
        if job is not None and job.get_status(refresh=False) == JobStatus.SCHEDULED:
            # Overdue in rq's scheduled registry, never started: out of it, and queued in its
            # place under the same id (a later scheduler would otherwise run it a second time).
            job.delete()
        elif job is not None:
            generation = next_generation(op_id, number)
        enqueue_slice(op_id, number, generation, run_at=run_at)


def unschedule_operation(op_id, slices):
    """After a scheduled operation's cancel commits: its slice jobs out of rq's scheduled
    registry, and deleted, instead of waiting there until their time. If Redis fails here the
    cancel still stands: the job, when it comes due, finds nothing to start (runner.start)."""
    try:
        registry = queue().scheduled_job_registry
        for _, job in slice_jobs([(op_id, slices)])[op_id]:
            if job is not None and job.get_status(refresh=False) == JobStatus.SCHEDULED:
                registry.remove(job, delete_job=True)
    except RedisError as exc:
        log.warning("scheduled jobs not removed; they will start nothing: %s", exc, extra={"operation_id": str(op_id)})


def whole_second(when):
    """`when`, rounded up to a whole second: rq's scheduled registry keeps whole seconds and
    would cut the fraction off, and a job that comes early starts nothing (runner.start)."""
    return when.replace(microsecond=0) + timedelta(seconds=1) if when.microsecond else when


def enqueue_operation(op_id, slices, run_at=None, *, pending=True):
    """After the operation commits (or is approved, or resumes). If Redis fails here the request
    still succeeds: the committed operation is itself the outbox entry, and a sweep enqueues it."""
    try:
        enqueue_slices(op_id, slices, pending=pending, run_at=run_at)
    except RedisError as exc:
        log.warning("enqueue failed; the workers' sweep will enqueue it: %s", exc, extra={"operation_id": str(op_id)})


def slice_jobs(operations):
    """{operation id: [(generation, job) of each slice's current job, job None where rq has
    none]} for (id, slices) pairs, read in two round trips (generations, then jobs) however
    many operations a sweep looks at."""
    q = queue()
    with q.connection.pipeline(transaction=False) as pipe:
        for op_id, _ in operations:
            pipe.hgetall(generations_key(op_id))
        generations = pipe.execute()
    wanted = [
        (op_id, n, int(current.get(str(n).encode(), 0)))
        for (op_id, slices), current in zip(operations, generations, strict=True)
        for n in range(slices)
    ]
    ids = [job_id(*slice_) for slice_ in wanted]
    found = zip(wanted, Job.fetch_many(ids, connection=q.connection, serializer=q.serializer), strict=True)
    jobs = {op_id: [] for op_id, _ in operations}
    for (op_id, _, generation), job in found:
        jobs[op_id].append((generation, job))
    return jobs


def dead_slices(jobs, pending, late=False):
    """(number, (generation, job or None)) of each slice whose job rq will not run."""
    cutoff = stale_cutoff()
    return [(number, slice_) for number, slice_ in enumerate(jobs) if not will_run(slice_[1], pending, cutoff, late)]


def will_run(job, pending, cutoff, late=False):
    """Whether rq will run this slice job (queued, scheduled, deferred) or is running it.

    A started job moves a pending operation to in_progress at once, then beats the operation's
    heartbeat at every chunk: started longer ago than BULKOPS_STALE_AFTER with the operation
    still pending, or under an operation without a heartbeat for that long, it is dead (rq
    notices only 60–90 s later). `late`: the job's time passed SCHEDULER_GRACE ago, so a job
    still in rq's scheduled registry has no live scheduler to enqueue it (a killed worker's
    scheduler holds its lock for a minute)."""
    if job is None:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED and pending:
        return job.started_at is not None and job.started_at > cutoff
    return status in (WAITING - {JobStatus.SCHEDULED} if late else WAITING)


def overdue(run_at):
    """Whether rq's scheduler (it looks every second) should have enqueued a job due at `run_at`."""
    return run_at is not None and run_at < timezone.now() - timedelta(seconds=SCHEDULER_GRACE)


def stale_cutoff():
    return timezone.now() - timedelta(seconds=conf.STALE_AFTER)


def recover_stale():
    """Enqueue the operations that no rq job will run; never those merely waiting in a long queue.

    Pending: some slice's job is missing or dead (the enqueue after commit failed, Redis lost
    the job). Scheduled: the same, or its time passed and its job is still in rq's scheduled
    registry, which no scheduler is emptying. Running with a heartbeat older than
    BULKOPS_STALE_AFTER: no slice job will run (one still waiting would take over every item
    left when it runs). Returns their ids."""
    candidates = BulkOperation.objects.filter(
        Q(status__in=[Status.PENDING, Status.SCHEDULED], execution=Execution.ASYNC)
        | Q(status__in=[Status.IN_PROGRESS, Status.CANCELLING], heartbeat_at__lt=stale_cutoff())
    ).only("pk", "slices", "status", "heartbeat_at", "run_at")
    jobs = slice_jobs([(op.pk, op.slices) for op in candidates])
    resumed = []
    for op in candidates:
        pending = op.status in (Status.PENDING, Status.SCHEDULED)
        run_at = op.run_at if op.status == Status.SCHEDULED else None
        dead = dead_slices(jobs[op.pk], pending, overdue(run_at))
        if not dead or (not pending and len(dead) < op.slices):  # pending: any slice; running: all
            continue
        # Claim it first, so that two recoverers running at once enqueue it only once.
        if BulkOperation.objects.filter(pk=op.pk, status=op.status, heartbeat_at=op.heartbeat_at).update(
            heartbeat_at=timezone.now()
        ):
            log.warning("resuming operation", extra={"operation_id": str(op.pk), "status": op.status})
            # A scheduled one whose time has not come is scheduled again, never enqueued early.
            enqueue_slices(op.pk, op.slices, pending=pending, run_at=run_at)
            resumed.append(op.pk)
    return resumed


def maintenance():
    """Resume lost operations, then delete a bounded number of expired ones."""
    recover_stale()
    retention.delete_old_operations(limit=100)


def sweep_interval():
    """Seconds between two sweeps: short enough that a resumed operation starts within
    BULKOPS_STALE_AFTER + 15 s of its last heartbeat."""
    return max(1, min(5, conf.STALE_AFTER // 2))


def sweep_if_due():
    """Run `maintenance` unless another process did less than sweep_interval() ago.

    Every worker calls this periodically and every slice job at its end; a Redis key set
    with NX and an expiry lets one of them through per interval."""
    try:
        if queue().connection.set(SWEEP_LOCK, "1", nx=True, ex=sweep_interval()):
            maintenance()
    except Exception:  # noqa: BLE001 - a failed round is retried at the next interval
        log.exception("maintenance failed")
