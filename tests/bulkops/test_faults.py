"""Faults with real worker processes, real PostgreSQL and real Redis: every item applied once."""

import random
import time

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.test import override_settings
from django.utils import timezone
from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry

from bulkops import control, jobs, services
from bulkops.models import BulkOperation, BulkOperationItem
from tickets.models import Ticket, TicketEvent

from ..factories import AgentFactory
from ..processes import WORKER_COMMANDS, RedisServer, kill_group, running_worker, running_workers, wait_for
from .helpers import approve_if_awaiting

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def make_tickets(requester, count):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tickets_ticket (title, description, status, priority, requester_id, version, is_deleted,"
            " created_at, updated_at) SELECT 'Ticket ' || g, '', 'open', 'normal', %s, 1, false, now(), now()"
            " FROM generate_series(1, %s) AS g",
            [requester.pk, count],
        )
    return list(Ticket.objects.order_by("pk").values_list("pk", flat=True))


def start(user, ids, operation_type="update_status", data=None, batch_size=50, rate=None):
    request = services.Request(
        "tickets", operation_type, ids, data or {"status": "resolved"}, batch_size=batch_size, max_items_per_second=rate
    )
    op, _ = services.start_operation(user, request)
    approve_if_awaiting(op.pk)  # 20,000 items by a non-staff user (SPEC §13)
    return op


def progress_of(op):
    return BulkOperation.objects.values_list("processed_items", flat=True).get(pk=op.pk)


def finished(op):
    op.refresh_from_db()
    return op.is_finished and op


def assert_every_item_applied_once(op, tickets_changed):
    op.refresh_from_db()
    assert op.status == "completed", (op.status, op.error)
    assert BulkOperationItem.objects.filter(operation=op).exclude(status="succeeded").count() == 0
    assert (op.processed_items, op.successful_items, op.failed_items) == (op.total_items, op.total_items, 0)
    versions = Ticket.objects.filter(pk__in=tickets_changed).values_list("version", flat=True).order_by().distinct()
    assert list(versions) == [2], "some ticket was changed twice or not at all"
    assert TicketEvent.objects.filter(bulk_operation=op).count() == len(tickets_changed)


@pytest.mark.parametrize("kind", WORKER_COMMANDS)
def test_a_worker_killed_mid_operation_is_replaced_and_every_item_is_applied_exactly_once(kind, tmp_path):
    """Issue 10.4: with plain `manage.py rqworker`, the killed worker's slice stayed pending forever."""
    agent = AgentFactory()
    ids = make_tickets(agent, 20_000)
    op = start(agent, ids)
    assert op.slices == 4
    killed = kill_mid_operation_then_finish(op, kind, tmp_path, progress=2_000, stale_after=2)
    assert_every_item_applied_once(op, ids)
    assert_resumed_within_the_bound(op, killed, stale_after=2)


@pytest.mark.parametrize("kind", WORKER_COMMANDS)
def test_after_every_slice_died_a_fresh_worker_of_any_kind_resumes_within_stale_after_plus_15_s(kind, tmp_path):
    """No sibling slice job waits in the queue: only recovery can resume the operation."""
    agent = AgentFactory()
    ids = make_tickets(agent, 6_000)
    with override_settings(BULKOPS_MAX_SLICES=1):
        op = start(agent, ids)
    killed = kill_mid_operation_then_finish(op, kind, tmp_path, progress=1_500, stale_after=5)
    assert_every_item_applied_once(op, ids)
    assert_resumed_within_the_bound(op, killed, stale_after=5)


def test_with_engine_sized_chunks_a_killed_worker_s_items_are_still_applied_exactly_once(tmp_path):
    """No batch_size: chunks grow as the engine learns; a kill -9 mid-chunk loses none and repeats none."""
    agent = AgentFactory()
    ids = make_tickets(agent, 6_000)
    op = start(agent, ids, batch_size=None)
    assert op.batch_size is None
    kill_mid_operation_then_finish(op, "bulkops_worker", tmp_path, progress=1_500, stale_after=2)
    assert_every_item_applied_once(op, ids)


def kill_mid_operation_then_finish(op, kind, tmp_path, *, progress, stale_after):
    """Run a worker of `kind` until `progress` items are done, kill -9 it, then let a fresh one of
    the same kind finish the operation. Returns the time of the kill."""
    with running_worker(kind=kind, log_path=tmp_path / "first.log", BULKOPS_STALE_AFTER=stale_after):
        wait_for(lambda: progress_of(op) >= progress, timeout=120, message="the first chunks")
    # the block ended with a SIGKILL to the worker and its work-horse, mid-chunk
    killed = timezone.now()
    op.refresh_from_db()
    assert op.status == "in_progress" and op.processed_items < op.total_items
    with running_worker(kind=kind, log_path=tmp_path / "second.log", BULKOPS_STALE_AFTER=stale_after):
        wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
    return killed


@override_settings(BULKOPS_SLICE_MIN_ITEMS=2_000)
def test_a_killed_workers_slice_is_taken_over_by_a_surviving_slice_without_waiting_for_recovery(tmp_path):
    agent = AgentFactory()
    ids = make_tickets(agent, 8_000)
    op = start(agent, ids)
    assert op.slices == 4
    # Recovery would only resume it after ten minutes: the takeover alone must finish it.
    logs = [tmp_path / f"w{n}.log" for n in range(2)]
    with running_workers(logs, kind="rqworker", BULKOPS_STALE_AFTER=600) as workers:
        started = StartedJobRegistry(queue=jobs.queue())
        wait_for(lambda: started.count == 2 and progress_of(op) >= 500, timeout=120, message="two slices running")
        kill_group(workers[0])
        wait_for(lambda: finished(op), timeout=120, message="the operation to finish")
    assert_every_item_applied_once(op, ids)


def test_an_operation_accepted_while_redis_was_unreachable_is_run_once_by_a_worker_started_later(tmp_path):
    """Issue 11.3: the outbox (the committed pending operation) is swept by rq's own `rq worker`."""
    agent = AgentFactory()
    ids = make_tickets(agent, 300)
    unreachable = RedisServer()  # never started
    queues = {name: {**config, "URL": unreachable.url} for name, config in settings.RQ_QUEUES.items()}
    with override_settings(RQ_QUEUES=queues):
        op = start(agent, ids)  # the enqueue after commit fails; start_operation returns normally
    assert BulkOperation.objects.get(pk=op.pk).status == "pending" and jobs.queue().count == 0
    with running_worker(kind="rq", log_path=tmp_path / "worker.log"):
        wait_for(lambda: finished(op), timeout=120, message="the operation to finish")
    assert_every_item_applied_once(op, ids)


def test_two_operations_over_overlapping_shuffled_records_both_finish_without_lock_errors(tmp_path):
    agent = AgentFactory()
    ids = make_tickets(agent, 3_000)
    first_ids, second_ids = ids[:2_000], ids[1_000:]
    random.Random(1).shuffle(first_ids)
    random.Random(2).shuffle(second_ids)
    first = start(agent, first_ids, "set_priority", {"priority": "high"}, batch_size=100)
    second = start(agent, second_ids, "update_status", {"status": "pending"}, batch_size=100)
    with running_workers([tmp_path / f"w{n}.log" for n in range(2)]):
        for op in (first, second):
            wait_for(lambda op=op: finished(op), timeout=180, message=f"operation {op.pk}")
    for op in (first, second):
        assert op.status == "completed", list(op.items.exclude(status="succeeded").values_list("error_code")[:5])
    overlap = set(first_ids) & set(second_ids)
    assert Ticket.objects.filter(pk__in=overlap, priority="high", status="pending", version=3).count() == len(overlap)


def test_the_operation_finishes_when_postgresql_drops_every_connection_mid_operation(tmp_path):
    """What a PostgreSQL restart does to the workers: every session is cut mid-transaction."""
    agent = AgentFactory()
    ids = make_tickets(agent, 12_000)
    op = start(agent, ids)
    with running_worker(log_path=tmp_path / "worker.log", BULKOPS_STALE_AFTER=2):
        wait_for(lambda: progress_of(op) >= 1_000, timeout=120, message="the first chunks")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
    assert_every_item_applied_once(op, ids)


def test_the_operation_finishes_when_redis_restarts_mid_operation(tmp_path):
    redis_server = RedisServer()
    redis_server.start()
    agent = AgentFactory()
    ids = make_tickets(agent, 12_000)
    op = start(agent, ids)  # also enqueued on the tests' Redis: that copy is never run
    queue = Queue(jobs.QUEUE, connection=Redis.from_url(redis_server.url))
    for number in range(op.slices):
        queue.enqueue(jobs.run_slice, str(op.pk), number)
    try:
        with running_worker(log_path=tmp_path / "worker.log", REDIS_URL=redis_server.url, BULKOPS_STALE_AFTER=2):
            wait_for(lambda: progress_of(op) >= 1_000, timeout=120, message="the first chunks")
            redis_server.stop()  # everything queued is lost
            time.sleep(1)
            redis_server.start()
            wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
    finally:
        redis_server.stop()
    assert_every_item_applied_once(op, ids)


def test_the_worker_command_stays_alive_when_redis_goes_away_while_it_is_built_mid_job_or_idle(tmp_path):
    """Issue 11.2: building the worker talked to Redis outside the worker's retry, so the
    process died and the operation sat in progress."""
    redis_server = RedisServer()  # not started yet: the worker is built while Redis is down
    agent = AgentFactory()
    ids = make_tickets(agent, 6_000)
    worker_env = {"REDIS_URL": redis_server.url, "BULKOPS_STALE_AFTER": 2}
    try:
        with running_worker(log_path=tmp_path / "worker.log", **worker_env) as worker:
            assert_alive_after(worker, 3)
            redis_server.start()
            op = start(agent, ids)  # enqueued on the tests' Redis: the worker's sweep enqueues it on its own
            wait_for(lambda: progress_of(op) >= 1_000, timeout=120, message="the first chunks")
            redis_server.stop()  # mid-job
            assert_alive_after(worker, 3)
            redis_server.start()
            wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
            assert_every_item_applied_once(op, ids)
            redis_server.stop()  # idle
            assert_alive_after(worker, 3)
            redis_server.start()
            more = make_tickets(agent, 500)[len(ids) :]
            second = start(agent, more)
            wait_for(lambda: finished(second), timeout=120, message="the second operation to finish")
    finally:
        redis_server.stop()
    assert_every_item_applied_once(second, more)


def assert_alive_after(process, seconds):
    time.sleep(seconds)
    assert process.poll() is None, f"the worker exited with code {process.returncode}"


def assert_resumed_within_the_bound(op, killed, stale_after):
    """SPEC §11: the first item after the kill is done within BULKOPS_STALE_AFTER + 15 s of it
    (the rest then take the time they take)."""
    resumed = op.items.filter(processed_at__gt=killed).aggregate(first=Min("processed_at"))["first"]
    assert resumed is not None and (resumed - killed).total_seconds() <= stale_after + 15, (killed, resumed)


# --- pause, resume and fair share (SPEC §13) ------------------------------------------------


def running_slice_jobs():
    return StartedJobRegistry(queue=jobs.queue()).count


def test_counters_stay_exact_across_pause_resume_cycles_and_a_worker_killed_while_paused(tmp_path):
    agent = AgentFactory()
    ids = make_tickets(agent, 6_000)
    op = start(agent, ids)
    with running_worker(log_path=tmp_path / "first.log", BULKOPS_SLICE_SECONDS=1) as worker:
        for cycle in range(3):
            done = progress_of(op)
            wait_for(lambda done=done: progress_of(op) >= done + 300, timeout=120, message="progress")
            control.pause_operation(agent, op.pk)
            # Each slice ends at the end of its chunk: no job runs, nothing moves, items wait.
            wait_for(lambda: running_slice_jobs() == 0, timeout=30, message="the slices to stop")
            paused_at = progress_of(op)
            time.sleep(0.5)
            op.refresh_from_db()
            assert (op.status, op.processed_items) == ("paused", paused_at)
            assert op.items.filter(status="pending").count() == op.total_items - paused_at > 0
            if cycle == 2:
                kill_group(worker)  # and with it every job it might still have had
            control.resume_operation(agent, op.pk)
    with running_worker(log_path=tmp_path / "second.log", BULKOPS_SLICE_SECONDS=1):
        wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
    assert_every_item_applied_once(op, ids)


def test_a_continuation_left_queued_or_killed_mid_run_still_applies_every_item_once(tmp_path):
    agent = AgentFactory()
    ids = make_tickets(agent, 8_000)
    # Throttled, so that each 1-second run of the slice leaves work for the next on any machine:
    # unthrottled, a fast one did more than half of the items in the first run.
    with override_settings(BULKOPS_MAX_SLICES=1):
        op = start(agent, ids, rate=2_000)
    env = {"BULKOPS_SLICE_SECONDS": 1, "BULKOPS_STALE_AFTER": 2}
    # A worker that takes one job and leaves: the slice's continuation waits in the queue with
    # no worker, as if its worker had been killed right after enqueueing it.
    with running_worker("--max-jobs", "1", kind="rqworker", log_path=tmp_path / "first.log", **env) as first:
        first.wait(timeout=60)
    assert jobs.queue().job_ids == [f"bulkop-{op.pk}-0-g1"]
    time.sleep(2.5)  # the heartbeat is stale now, but a job for the slice waits: nothing to recover
    with override_settings(BULKOPS_STALE_AFTER=2):
        assert jobs.recover_stale() == []
    # Then a worker killed in the middle of a continuation: recovery enqueues the slice's next
    # generation, and the claims keep every item to one application.
    left_by_first = progress_of(op)
    assert 0 < left_by_first < 4_000
    with running_worker(log_path=tmp_path / "second.log", **env):
        wait_for(lambda: progress_of(op) >= left_by_first + 500, timeout=120, message="the continuation to run")
    with running_worker(log_path=tmp_path / "third.log", **env):
        wait_for(lambda: finished(op), timeout=180, message="the operation to finish")
    assert_every_item_applied_once(op, ids)
    # The slice went on past the first worker's continuation (g1): by its own next continuation,
    # or by recovery when the kill caught one running — where the kill lands is up to timing.
    assert int(jobs.queue().connection.hget(jobs.generations_key(op.pk), 0)) >= 2
