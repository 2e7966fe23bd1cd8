"""The throttle's token bucket and the fair-share slice budget, on real Redis and PostgreSQL."""

import time

import pytest
from django.test import override_settings

from bulkops import control, jobs, pacing, services, signals
from bulkops.models import BulkOperation

from ..factories import AgentFactory, TicketFactory
from .helpers import work_off

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, count, **options):
    ids = [t.pk for t in TicketFactory.create_batch(count)]
    request = services.Request("tickets", "update_status", ids, {"status": "resolved"}, **options)
    return services.start_operation(user, request)[0]


def chunk_sizes(op):
    """The sizes of the chunks the worker commits for `op`, in order (a list filled as it runs)."""
    sizes, last = [], [-1]

    def receiver(sender, op, last_position, **signal):
        sizes.append(last_position - last[0])
        last[0] = last_position

    signals.chunk_committed.connect(receiver, weak=False)
    return sizes, receiver


@pytest.mark.parametrize(
    ("rate", "batch_size", "limit"), [(None, 50, 50), (1, 50, 1), (10, 50, 3), (100, 50, 25), (100_000, 1000, 1000)]
)
def test_a_chunk_holds_at_most_a_quarter_second_of_the_rate(rate, batch_size, limit):
    assert pacing.chunk_limit(rate, batch_size) == limit


def waits(expected, wait, since):
    """`wait` is `expected` seconds less the time the bucket refilled since `since` (a loaded
    machine takes a while between two calls), never more."""
    elapsed = time.monotonic() - since
    return expected - elapsed - 0.02 <= wait <= expected + 0.02


def test_the_bucket_lets_one_chunk_through_at_once_then_spaces_the_next_by_the_rate():
    began = time.monotonic()
    assert pacing.take("op", 100, 25, longest=5) == 0
    assert waits(0.25, pacing.take("op", 100, 25, longest=5), began)
    # A reservation queues behind the one before it, so concurrent slices never burst together.
    assert waits(0.5, pacing.take("op", 100, 25, longest=5), began)


def test_tokens_further_off_than_the_slice_may_wait_are_not_reserved():
    began = time.monotonic()
    pacing.take("op", 10, 3, longest=5)
    refused = pacing.take("op", 10, 3, longest=0.1)
    assert refused < 0 and waits(0.3, -refused, began)
    assert waits(0.3, pacing.take("op", 10, 3, longest=5), began)  # nothing was taken meanwhile


def test_a_throttled_operation_runs_at_its_rate():
    op = start(AgentFactory(), 60, max_items_per_second=20)
    work_off()
    op.refresh_from_db()
    assert op.status == "completed"
    # The first chunk (5 items) goes at once, the other 55 at 20 per second: 2.75 s. Timed
    # from the operation's start to its end: the worker's own start-up is not the throttle's.
    seconds = (op.completed_at - op.started_at).total_seconds()
    assert 2.75 * 0.8 <= seconds <= 2.75 * 1.2 + 0.5, seconds


def test_a_throttle_changed_mid_run_applies_from_the_next_chunk():
    agent = AgentFactory()
    op = start(agent, 60, batch_size=10)
    sizes, receiver = chunk_sizes(op)

    def rethrottle(sender, op, **signal):
        if len(sizes) == 1:
            control.change_operation(agent, op.pk, max_items_per_second=8)  # 2 items per chunk
        elif len(sizes) == 4:
            control.change_operation(agent, op.pk, max_items_per_second=None)

    signals.chunk_committed.connect(rethrottle, weak=False)
    try:
        work_off()
    finally:
        signals.chunk_committed.disconnect(receiver)
        signals.chunk_committed.disconnect(rethrottle)
    assert sizes[:7] == [10, 2, 2, 2, 10, 10, 10]
    assert BulkOperation.objects.get(pk=op.pk).status == "completed"


@override_settings(BULKOPS_SLICE_SECONDS=0)
def test_a_slice_out_of_time_continues_behind_another_users_operation():
    """Fair share: each turn of the large operation's slice does one chunk, then its continuation
    goes to the back of the queue — behind the small operation created after it."""
    large = start(AgentFactory(), 200, batch_size=20)
    small = start(AgentFactory(), 10)
    work_off()
    large.refresh_from_db()
    small.refresh_from_db()
    assert (large.status, small.status) == ("completed", "completed")
    done_after_small = large.items.filter(processed_at__gt=small.completed_at).count()
    assert done_after_small >= 160  # the small one waited for one chunk of the large one, not for all of it
    # Every continuation ran under the slice's next generation (nine after a chunk of its own
    # range, one before taking over what is left): recovery reads it from here.
    generations = jobs.queue().connection.hgetall(jobs.generations_key(large.pk))
    assert generations == {b"0": b"10"}


@override_settings(BULKOPS_SLICE_SECONDS=0)
def test_a_continuation_waiting_in_the_queue_keeps_recovery_away():
    op = start(AgentFactory(), 40, batch_size=20)
    jobs.queue().remove(f"bulkop-{op.pk}-0")  # taken by a worker, which runs it:
    jobs.run_slice(str(op.pk), 0)  # one chunk, then the continuation is queued
    assert jobs.queue().job_ids == [f"bulkop-{op.pk}-0-g1"]
    BulkOperation.objects.filter(pk=op.pk).update(heartbeat_at="2000-01-01T00:00Z")
    assert jobs.recover_stale() == []
    work_off()
    op.refresh_from_db()
    assert (op.status, op.successful_items) == ("completed", 40)
