"""The chunk loop, run in this process against real PostgreSQL (and Redis for events)."""

import threading
from contextlib import contextmanager

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from bulkops import jobs, runner, services, signals
from bulkops.models import BulkOperation, BulkOperationItem
from tickets.models import Comment, Ticket, TicketEvent

from ..factories import AgentFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def start(user, ids, operation_type="update_status", data=None, **options):
    request = services.Request(
        resource_type="tickets",
        operation_type=operation_type,
        ids=ids,
        operation_data={"status": "resolved"} if data is None else data,
        **options,
    )
    op, _ = services.start_operation(user, request)
    return op


def run(op):
    for number in range(op.slices):
        runner.run_slice(op.pk, number)
    op.refresh_from_db()
    return op


def items(op):
    return list(op.items.order_by("position").values_list("target_id", "status", "error_code"))


def assert_counters_match_items(op):
    rows = {s: op.items.filter(status=s).count() for s in ("succeeded", "failed", "skipped", "pending")}
    assert rows["pending"] == 0
    assert (op.successful_items, op.failed_items, op.skipped_items) == (
        rows["succeeded"],
        rows["failed"],
        rows["skipped"],
    )
    assert op.processed_items == op.successful_items + op.failed_items
    assert op.successful_items + op.failed_items + op.skipped_items == op.total_items


def test_partial_mode_fails_only_the_refused_items_and_applies_the_rest():
    agent = AgentFactory()
    open_ticket, closed_ticket = TicketFactory(), TicketFactory(status="closed")
    deleted = TicketFactory(is_deleted=True)
    op = run(start(agent, [open_ticket.pk, closed_ticket.pk, deleted.pk, 987654], batch_size=2))
    assert op.status == "partial"
    assert items(op) == [
        (str(open_ticket.pk), "succeeded", ""),
        (str(closed_ticket.pk), "failed", "INVALID_TRANSITION"),
        (str(deleted.pk), "failed", "NOT_FOUND"),
        ("987654", "failed", "NOT_FOUND"),
    ]
    open_ticket.refresh_from_db()
    closed_ticket.refresh_from_db()
    assert (open_ticket.status, open_ticket.version) == ("resolved", 2)
    assert (closed_ticket.status, closed_ticket.version) == ("closed", 1)
    assert_counters_match_items(op)


def test_a_requester_gets_permission_denied_on_their_own_tickets_and_not_found_on_others():
    requester = UserFactory()
    own, other = TicketFactory(requester=requester), TicketFactory()
    op = run(start(requester, [own.pk, other.pk]))
    assert op.status == "failed"
    assert [row[2] for row in items(op)] == ["PERMISSION_DENIED", "NOT_FOUND"]


def test_each_item_stores_the_values_revert_needs_and_its_audit_rows_carry_the_reason():
    agent = AgentFactory()
    ticket = TicketFactory(priority="low")
    op = run(start(agent, [ticket.pk], "set_priority", {"priority": "urgent"}, metadata={"description": "triage"}))
    item = op.items.get()
    assert item.before == {"priority": "low", "version": 1}
    assert item.result == {"changed": True, "version": 2, "after": {"priority": "urgent"}}
    event = TicketEvent.objects.get(ticket=ticket)
    assert (event.field, event.old_value, event.new_value, event.reason, event.bulk_operation_id) == (
        "priority",
        "low",
        "urgent",
        "triage",
        op.pk,
    )


@contextmanager
def frozen(ticket):
    """A BEFORE UPDATE trigger that refuses any write to `ticket`, as a database rule might."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION refuse_frozen() RETURNS trigger AS $$
            BEGIN
              IF NEW.id = {ticket.pk} THEN RAISE EXCEPTION 'this ticket is frozen'; END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_frozen BEFORE UPDATE ON tickets_ticket
              FOR EACH ROW EXECUTE FUNCTION refuse_frozen();
            """
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_frozen ON tickets_ticket; DROP FUNCTION refuse_frozen()")


def test_a_chunk_whose_set_based_write_fails_is_redone_one_savepoint_per_item():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(6)
    poisoned = tickets[3]
    with frozen(poisoned):
        op = run(start(agent, [t.pk for t in tickets], batch_size=6))
    assert op.status == "partial"
    failed = op.items.get(status="failed")
    assert (failed.target_id, failed.error_code) == (str(poisoned.pk), "INTERNAL_ERROR")
    assert "frozen" in failed.error_message
    statuses = dict(Ticket.objects.values_list("pk", "status"))
    assert statuses.pop(poisoned.pk) == "open"
    assert set(statuses.values()) == {"resolved"}
    assert TicketEvent.objects.filter(bulk_operation=op).count() == 5
    assert_counters_match_items(op)


def test_an_atomic_operation_whose_write_fails_names_the_item_and_changes_nothing():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(5)
    with frozen(tickets[3]):
        op = run(start(agent, [t.pk for t in tickets], mode="atomic", batch_size=2))
    assert op.status == "failed"
    assert [row[2] for row in items(op)] == ["ROLLED_BACK"] * 3 + ["INTERNAL_ERROR", "ROLLED_BACK"]
    assert set(Ticket.objects.values_list("status", "version")) == {("open", 1)}


@contextmanager
def cancelled_while_applying(agent, op, item):
    """Cancel `op` through the service, from another connection, as its `item`-th item (from 1)
    is applied: while an atomic operation's transaction is open, which the cancel must not wait for."""
    definition = runner.registry.get("tickets", "update_status")
    original, applied = definition.apply, []

    def cancel_elsewhere():
        try:
            services.cancel_operation(agent, op.pk)
        finally:
            connections.close_all()

    def apply_then_cancel(record, ctx, data):
        applied.append(record.pk)
        if len(applied) == item:
            canceller = threading.Thread(target=cancel_elsewhere)
            canceller.start()
            canceller.join(timeout=5)
            assert not canceller.is_alive(), "cancel waited for the atomic transaction"
        return original(record, ctx, data)

    definition.apply = apply_then_cancel
    try:
        yield
    finally:
        del definition.apply


@pytest.mark.parametrize("item", [1, 4], ids=["during_the_first_chunk", "during_the_last_chunk"])
def test_cancelling_an_atomic_operation_rolls_back_what_it_had_done(item):
    """Four items in chunks of two, cancelled as the `item`-th is applied. Nothing is committed
    before the last chunk is: a cancel during the last chunk still stops it all."""
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(4)
    op = start(agent, [t.pk for t in tickets], mode="atomic", batch_size=2)
    with cancelled_while_applying(agent, op, item):
        op = run(op)
    assert op.status == "cancelled"
    assert set(op.items.values_list("status", flat=True)) == {"skipped"}
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_atomic_mode_rolls_everything_back_and_marks_the_others_rolled_back():
    agent = AgentFactory()
    good = TicketFactory.create_batch(3)
    closed = TicketFactory(status="closed")
    ids = [good[0].pk, closed.pk, good[1].pk, good[2].pk]
    op = run(start(agent, ids, mode="atomic", batch_size=2))
    assert op.status == "failed"
    assert [row[2] for row in items(op)] == ["ROLLED_BACK", "INVALID_TRANSITION", "ROLLED_BACK", "ROLLED_BACK"]
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open", "closed"}
    assert set(Ticket.objects.values_list("version", flat=True)) == {1}
    assert not TicketEvent.objects.exists()
    assert (op.successful_items, op.failed_items) == (0, 4)


def test_atomic_mode_applies_everything_when_nothing_fails():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(5)
    op = run(start(agent, [t.pk for t in tickets], mode="atomic", batch_size=2))
    assert op.status == "completed"
    assert set(Ticket.objects.values_list("status", flat=True)) == {"resolved"}


def test_dry_run_reports_what_would_happen_and_changes_nothing():
    agent = AgentFactory()
    ticket, closed = TicketFactory(), TicketFactory(status="closed")
    op = run(start(agent, [ticket.pk, closed.pk], dry_run=True))
    assert op.status == "partial" and op.dry_run
    assert [row[1:] for row in items(op)] == [("succeeded", ""), ("failed", "INVALID_TRANSITION")]
    assert list(Ticket.objects.order_by("pk").values_list("status", "version")) == [("open", 1), ("closed", 1)]
    assert not TicketEvent.objects.exists()


def test_add_comment_records_the_comment_it_made():
    agent = AgentFactory()
    ticket = TicketFactory()
    op = run(start(agent, [ticket.pk], "add_comment", {"body": "We are on it"}))
    comment = Comment.objects.get(ticket=ticket)
    assert (comment.body, comment.author_id, comment.bulk_operation_id) == ("We are on it", agent.pk, op.pk)
    assert op.items.get().result["comment_id"] == comment.pk


def test_a_rerun_after_a_crash_skips_the_items_already_done():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(5)
    op = start(agent, [t.pk for t in tickets], batch_size=2)
    runner.start(op.pk)
    runner.run_chunk(op, runner.registry.get("tickets", "update_status"), runner.context_for(op), 0, 5)
    # The "crashed" slice is run again from the start, as a recovered job would.
    op = run(op)
    assert op.status == "completed"
    assert set(Ticket.objects.values_list("version", flat=True)) == {2}
    assert TicketEvent.objects.count() == 5
    assert set(op.items.values_list("attempts", flat=True)) == {1}


@override_settings(BULKOPS_LOCK_TIMEOUT_MS=200)
def test_a_row_locked_elsewhere_fails_lock_timeout_and_the_rest_go_on():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(4)
    held = tickets[2]
    locked, release = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT id FROM tickets_ticket WHERE id = %s FOR UPDATE", [held.pk])
                locked.set()
                release.wait(30)
                cursor.execute("ROLLBACK")
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        op = run(start(agent, [t.pk for t in tickets], batch_size=4))
    finally:
        release.set()
        holder.join()
    assert op.status == "partial"
    failed = op.items.get(status="failed")
    assert (failed.target_id, failed.error_code) == (str(held.pk), "LOCK_TIMEOUT")
    assert Ticket.objects.filter(status="resolved").count() == 3
    assert_counters_match_items(op)


def test_cancelling_a_running_operation_stops_at_the_next_chunk_and_skips_the_rest():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(6)
    op = start(agent, [t.pk for t in tickets], batch_size=2)
    runner.start(op.pk)
    definition = runner.registry.get("tickets", "update_status")
    runner.run_chunk(op, definition, runner.context_for(op), 0, 6)
    services.cancel_operation(agent, op.pk)
    op = run(op)
    assert op.status == "cancelled" and op.cancelled_at is not None
    assert [row[1] for row in items(op)] == ["succeeded"] * 2 + ["skipped"] * 4
    assert set(op.items.filter(status="skipped").values_list("error_code", flat=True)) == {"CANCELLED"}
    assert Ticket.objects.filter(status="resolved").count() == 2
    assert_counters_match_items(op)


def test_cancelling_a_pending_operation_cancels_it_at_once():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    op = start(agent, [t.pk for t in tickets])
    op = services.cancel_operation(agent, op.pk)
    assert op.status == "cancelled"
    assert set(op.items.values_list("status", "error_code")) == {("skipped", "CANCELLED")}
    # A worker that picks the job up afterwards changes nothing.
    run(op)
    assert set(Ticket.objects.values_list("status", flat=True)) == {"open"}


def test_large_operations_are_split_into_slices_that_together_cover_every_item():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(30)
    with override_settings(BULKOPS_SLICE_MIN_ITEMS=10, BULKOPS_MAX_SLICES=4):
        op = start(agent, [t.pk for t in tickets], batch_size=4)
    assert op.slices == 3
    assert [runner.slice_bounds(op, n) for n in range(3)] == [(0, 10), (10, 20), (20, 30)]
    runner.run_slice(op.pk, 0)
    op.refresh_from_db()
    # Slice 0 took over the items of slices 1 and 2 (SPEC §11): their jobs find nothing left.
    assert op.status == "completed" and op.successful_items == 30
    op = run(op)
    assert op.successful_items == 30 and set(Ticket.objects.values_list("version", flat=True)) == {2}


def test_stale_operations_are_resumed_and_fresh_ones_left_alone():
    agent = AgentFactory()
    ticket = TicketFactory()
    stale, fresh = start(agent, [ticket.pk]), start(agent, [ticket.pk])
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    BulkOperation.objects.filter(pk=stale.pk).update(status="in_progress", heartbeat_at=long_ago)
    BulkOperation.objects.filter(pk=fresh.pk).update(status="in_progress", heartbeat_at=timezone.now())
    jobs.queue().empty()
    assert jobs.recover_stale() == [stale.pk]
    assert [job.args for job in jobs.queue().get_jobs()] == [(str(stale.pk), 0)]
    # Claimed: a second recoverer running at once finds nothing to do.
    assert jobs.recover_stale() == []


def test_counters_equal_the_item_rows_after_finalize_even_if_they_drifted():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    op = run(start(agent, [t.pk for t in tickets]))
    BulkOperation.objects.filter(pk=op.pk).update(status="in_progress", successful_items=99)
    runner.finalize(op.pk)
    op.refresh_from_db()
    assert op.status == "completed"
    assert_counters_match_items(op)


def test_items_are_written_in_one_statement(django_assert_num_queries):
    agent = AgentFactory()
    request = services.Request("tickets", "update_status", list(range(1, 5001)), {"status": "closed"})
    # BEGIN, user lock with the active-cap count, operation insert, all items, COMMIT.
    with django_assert_num_queries(5):
        op, _ = services.start_operation(agent, request)
    assert BulkOperationItem.objects.filter(operation=op).count() == 5000
    assert list(op.items.order_by("position").values_list("target_id", flat=True)[:3]) == ["1", "2", "3"]


def test_an_item_that_changes_nothing_succeeds_unchanged_and_is_counted():
    agent = AgentFactory()
    low = TicketFactory.create_batch(2, priority="low")
    high = TicketFactory(priority="high")
    op = run(start(agent, [t.pk for t in [*low, high]], "set_priority", {"priority": "low"}))
    assert (op.status, op.successful_items, op.unchanged_items) == ("completed", 3, 2)
    assert [item.result["changed"] for item in op.items.order_by("position")] == [False, False, True]
    runner.finalize(op.pk)  # a recount agrees with the per-chunk counters
    op.refresh_from_db()
    assert op.unchanged_items == 2


def chunk_sizes(op):
    """Run `op` here; the number of items each committed chunk took."""
    lasts = []

    def committed(sender, op, seconds, last_position, **kwargs):
        lasts.append(last_position)

    signals.chunk_committed.connect(committed)
    try:
        run(op)
    finally:
        signals.chunk_committed.disconnect(committed)
    return [b - a for a, b in zip([-1, *lasts], lasts, strict=False)]


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=2, BULKOPS_MAX_BATCH_SIZE=8, BULKOPS_CHUNK_LOCK_MS=60_000)
def test_without_a_batch_size_the_engine_grows_its_chunks_and_applies_every_item_once():
    agent, tickets = AgentFactory(), TicketFactory.create_batch(25)
    op = start(agent, [t.pk for t in tickets], batch_size=None)
    assert op.batch_size is None
    assert chunk_sizes(op) == [2, 4, 8, 8, 3]
    op.refresh_from_db()
    assert (op.status, op.successful_items) == ("completed", 25)
    assert TicketEvent.objects.filter(bulk_operation_id=op.pk).count() == 25
    assert_counters_match_items(op)


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=2, BULKOPS_MAX_BATCH_SIZE=8, BULKOPS_CHUNK_LOCK_MS=60_000)
def test_a_given_batch_size_is_honoured_by_every_chunk():
    agent, tickets = AgentFactory(), TicketFactory.create_batch(10)
    assert chunk_sizes(start(agent, [t.pk for t in tickets], batch_size=3)) == [3, 3, 3, 1]


@override_settings(BULKOPS_FIRST_CHUNK_SIZE=4, BULKOPS_CHUNK_LOCK_MS=0.001)
def test_chunks_over_the_lock_time_shrink_to_one_item():
    agent, tickets = AgentFactory(), TicketFactory.create_batch(7)
    assert chunk_sizes(start(agent, [t.pk for t in tickets], batch_size=None)) == [4, 1, 1, 1]
