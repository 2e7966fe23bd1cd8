"""Scheduled operations (`run_at`, SPEC §13): validation, rq's scheduler, cancel, recovery."""

import time
from datetime import datetime, timedelta

import django_rq
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from rq import SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from bulkops import jobs, runner
from bulkops.models import BulkOperation, BulkOperationItem, Status
from tickets.models import Ticket

from ..factories import TicketFactory
from ..processes import RedisServer, running_worker, wait_for

TICKETS = "/api/v1/tickets/bulk-operations/"
RESOLVE = {"operation_type": "update_status", "operation_data": {"status": "resolved"}}

pytestmark = pytest.mark.django_db(transaction=True)


def later(seconds):
    return timezone.now() + timedelta(seconds=seconds)


def create(client, tickets, run_at, **extra):
    body = {"ticket_ids": [t.pk for t in tickets], **RESOLVE, "run_at": run_at, **extra}
    return client.post(TICKETS, body, format="json")


def scheduled_at(op_id):
    """{job id: the time rq's scheduled registry holds it for}."""
    queue = django_rq.get_queue("bulkops")
    registry = ScheduledJobRegistry(queue=queue)
    return {job_id: registry.get_scheduled_time(job_id) for job_id in registry.get_job_ids() if str(op_id) in job_id}


def work_off_due():
    """A burst worker that first enqueues what rq's scheduled registry holds and is due."""
    queue = django_rq.get_queue("bulkops")
    SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=True)


def wait_until_due(op_id):
    """Sleep until rq's scheduled registry holds the operation's jobs as due (whole seconds)."""
    due = jobs.whole_second(BulkOperation.objects.get(pk=op_id).run_at)
    time.sleep(max(0, (due - timezone.now()).total_seconds()) + 0.1)


@pytest.fixture
def client(client_for, agent):
    return client_for(agent)


@pytest.fixture
def tickets(db):
    return TicketFactory.create_batch(3)


# --- bad input ----------------------------------------------------------------------------


WRONG_FORMAT = "run_at: Give an ISO 8601 time, e.g. 2026-12-24T22:00:00Z."


@pytest.mark.parametrize(
    ("run_at", "message"),
    [
        (lambda: "2020-01-01T00:00:00Z", "run_at: Give a time in the future."),
        (lambda: later(-1).isoformat(), "run_at: Give a time in the future."),
        (lambda: later(31 * 86400).isoformat(), "run_at: Give a time at most 30 days ahead."),
        (lambda: "tomorrow", WRONG_FORMAT),
        (lambda: 1_900_000_000, WRONG_FORMAT),
        (lambda: "9999-12-31T23:59:59-15:00", "run_at: Datetime value out of range."),
    ],
    ids=["2020", "a second ago", "31 days ahead", "a word", "a number", "past year 9999 in UTC"],
)
def test_a_run_at_in_the_past_too_far_ahead_or_not_a_time_is_refused_and_nothing_stored(
    client, tickets, run_at, message
):
    response = create(client, tickets, run_at())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["message"] == message
    assert not BulkOperation.objects.exists()
    assert not BulkOperationItem.objects.exists()


def test_a_sync_operation_cannot_be_scheduled(client, tickets):
    response = create(client, tickets, later(60).isoformat(), execution="sync")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "run_at: A sync operation runs inside the request; use execution async to schedule it."
    )
    assert not BulkOperation.objects.exists()


# --- scheduling ---------------------------------------------------------------------------


def test_a_scheduled_operation_waits_in_rqs_scheduled_registry_until_its_time(client, tickets):
    run_at = later(3600).replace(microsecond=0)
    response = create(client, tickets, run_at.isoformat())
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "scheduled"
    op_id = response.json()["operation_id"]
    status = client.get(f"{TICKETS}{op_id}/").json()
    assert (status["status"], status["run_at"]) == ("scheduled", run_at.isoformat().replace("+00:00", "Z"))
    assert datetime.fromisoformat(status["estimated_completion"]) >= run_at
    assert scheduled_at(op_id) == {jobs.job_id(op_id, 0): run_at}
    assert django_rq.get_queue("bulkops").count == 0
    assert runner.start(op_id) is None  # a job run early would start nothing
    assert BulkOperation.objects.get(pk=op_id).status == Status.SCHEDULED


def test_a_job_is_scheduled_at_the_whole_second_after_run_at_never_before(client, tickets):
    """rq's scheduled registry keeps whole seconds: cut off, 12:00:00.5 would come due at
    12:00:00, and the job would find its operation not due yet and start nothing."""
    run_at = later(600).replace(microsecond=500_000)
    op_id = create(client, tickets, run_at.isoformat()).json()["operation_id"]
    assert scheduled_at(op_id) == {jobs.job_id(op_id, 0): run_at.replace(microsecond=0) + timedelta(seconds=1)}


def test_a_run_at_without_an_offset_is_utc(client, tickets):
    run_at = later(600).replace(microsecond=0, tzinfo=None)
    response = create(client, tickets, run_at.isoformat())
    assert response.status_code == 202, response.json()
    assert BulkOperation.objects.get().run_at.replace(tzinfo=None) == run_at


def test_a_scheduled_operation_starts_when_rqs_scheduler_enqueues_it(client, tickets):
    response = create(client, tickets, later(1.5).isoformat())
    op_id = response.json()["operation_id"]
    work_off_due()
    assert BulkOperation.objects.get(pk=op_id).status == Status.SCHEDULED  # not yet due
    wait_until_due(op_id)
    work_off_due()
    op = BulkOperation.objects.get(pk=op_id)
    assert (op.status, op.successful_items) == (Status.COMPLETED, 3)
    assert op.started_at >= op.run_at


def test_scheduled_operations_do_not_count_towards_the_active_cap(client, tickets, settings):
    settings.BULKOPS_MAX_ACTIVE_PER_USER = 1
    assert create(client, tickets, later(600).isoformat()).status_code == 202
    assert create(client, tickets, later(600).isoformat()).status_code == 202
    assert client.post(TICKETS, {"ticket_ids": [tickets[0].pk], **RESOLVE}, format="json").status_code == 202
    response = client.post(TICKETS, {"ticket_ids": [tickets[0].pk], **RESOLVE}, format="json")
    assert response.json()["error"]["code"] == "TOO_MANY_ACTIVE_OPERATIONS"


# --- cancel -------------------------------------------------------------------------------


def test_cancel_of_a_scheduled_operation_skips_every_item_and_its_job_starts_nothing(client, tickets):
    op_id = create(client, tickets, later(1).isoformat()).json()["operation_id"]
    response = client.post(f"{TICKETS}{op_id}/cancel/")
    assert (response.status_code, response.json()["status"]) == (202, "cancelled")
    wait_until_due(op_id)
    work_off_due()  # the scheduled job comes due and runs
    assert scheduled_at(op_id) == {}
    op = BulkOperation.objects.get(pk=op_id)
    assert (op.status, op.started_at, op.skipped_items) == (Status.CANCELLED, None, 3)
    assert set(op.items.values_list("status", "error_code")) == {("skipped", "CANCELLED")}
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_cancel_of_a_scheduled_operation_takes_its_job_out_of_rqs_scheduled_registry(client, tickets):
    run_at = later(3600).replace(microsecond=0)
    op_id, other_id = (create(client, tickets, run_at.isoformat()).json()["operation_id"] for _ in range(2))
    assert scheduled_at(op_id) == {jobs.job_id(op_id, 0): run_at}

    response = client.post(f"{TICKETS}{op_id}/cancel/")

    assert (response.status_code, response.json()["status"]) == (202, "cancelled")
    assert scheduled_at(op_id) == {}
    assert not Job.exists(jobs.job_id(op_id, 0), connection=django_rq.get_connection("bulkops"))
    assert scheduled_at(other_id) == {jobs.job_id(other_id, 0): run_at}  # only its own
    assert BulkOperation.objects.get(pk=other_id).status == Status.SCHEDULED


def test_a_cancel_while_redis_is_down_still_cancels_and_leaves_the_job_to_start_nothing(client, tickets, caplog):
    run_at = later(3600).replace(microsecond=0)
    op_id = create(client, tickets, run_at.isoformat()).json()["operation_id"]
    unreachable = RedisServer()  # never started
    queues = {name: {**config, "URL": unreachable.url} for name, config in settings.RQ_QUEUES.items()}

    with override_settings(RQ_QUEUES=queues):
        response = client.post(f"{TICKETS}{op_id}/cancel/")

    assert (response.status_code, response.json()["status"]) == (202, "cancelled")
    assert BulkOperation.objects.get(pk=op_id).status == Status.CANCELLED
    assert "scheduled jobs not removed" in caplog.text
    assert scheduled_at(op_id) == {jobs.job_id(op_id, 0): run_at}  # comes due and starts nothing (above)
    assert runner.start(op_id) is None


# --- recovery -----------------------------------------------------------------------------


def test_recovery_schedules_a_lost_job_again_and_never_enqueues_it_early(client, tickets):
    run_at = later(3600).replace(microsecond=0)
    op_id = create(client, tickets, run_at.isoformat()).json()["operation_id"]
    django_rq.get_connection("bulkops").flushdb()  # Redis lost everything
    assert jobs.recover_stale() == [BulkOperation.objects.get().pk]
    assert scheduled_at(op_id) == {jobs.job_id(op_id, 0): run_at}
    assert django_rq.get_queue("bulkops").count == 0
    assert jobs.recover_stale() == []  # scheduled again: nothing more to do


def test_recovery_enqueues_an_overdue_scheduled_job_no_scheduler_moved(client, tickets):
    """A killed worker's scheduler keeps its lock for a minute: its due jobs stay scheduled."""
    op_id = create(client, tickets, later(1).isoformat()).json()["operation_id"]
    assert jobs.recover_stale() == []  # scheduled, not due: rq's scheduler will move it
    time.sleep(1 + jobs.SCHEDULER_GRACE)
    assert jobs.recover_stale() == [BulkOperation.objects.get().pk]
    assert scheduled_at(op_id) == {}
    job = Job.fetch(jobs.job_id(op_id, 0), connection=django_rq.get_connection("bulkops"))
    assert job.get_status() == JobStatus.QUEUED
    assert django_rq.get_queue("bulkops").job_ids == [jobs.job_id(op_id, 0)]


# --- real workers -------------------------------------------------------------------------


def scheduler_running():
    """Whether a worker's rq scheduler holds the bulkops queue's lock (it has started)."""
    return django_rq.get_connection("bulkops").exists(RQScheduler.get_locking_key("bulkops"))


@pytest.mark.worker
@pytest.mark.parametrize("kind", ["bulkops_worker", "rqworker", "rq"])
def test_a_scheduled_operation_starts_within_5_s_of_run_at_on_every_worker_command(client, tickets, kind):
    """Each command runs rq's scheduler, though neither `rqworker` nor `rq worker` is told
    `--with-scheduler` here: RecoveringWorker turns it on."""
    with running_worker(kind=kind):
        wait_for(scheduler_running, timeout=30, message="the worker's scheduler")
        run_at = later(2)
        op_id = create(client, tickets, run_at.isoformat()).json()["operation_id"]
        op = wait_for(
            lambda: BulkOperation.objects.filter(pk=op_id, status=Status.COMPLETED).first(),
            timeout=30,
            message="the scheduled operation to finish",
        )
    late = (op.started_at - op.run_at).total_seconds()
    assert 0 <= late < 5, late
    assert set(Ticket.objects.values_list("status", "version")) == {("resolved", 2)}


@pytest.mark.worker
def test_a_scheduled_operation_survives_a_killed_worker(client, tickets):
    """kill -9 of the worker (and its scheduler) before run_at; a fresh worker starts it
    although the dead scheduler's lock lasts a minute: recovery enqueues it once it is overdue."""
    with running_worker(BULKOPS_STALE_AFTER=4):
        wait_for(scheduler_running, timeout=30, message="the worker's scheduler")
        run_at = later(3)
        op_id = create(client, tickets, run_at.isoformat()).json()["operation_id"]
    assert scheduler_running()  # its lock outlives it
    with running_worker(BULKOPS_STALE_AFTER=4):
        op = wait_for(
            lambda: BulkOperation.objects.filter(pk=op_id, status=Status.COMPLETED).first(),
            timeout=40,
            message="the scheduled operation to finish",
        )
    late = (op.started_at - op.run_at).total_seconds()
    # SCHEDULER_GRACE + a sweep interval (2 s here) + a fork
    assert 0 <= late < 8, late
    assert set(Ticket.objects.values_list("status", "version")) == {("resolved", 2)}
    assert set(op.items.values_list("status", "attempts")) == {("succeeded", 1)}
