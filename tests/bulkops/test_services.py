"""bulkops.services: starting, finding, cancelling, reverting and retrying operations."""

import threading
from datetime import timedelta

import django_rq
import pytest
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from bulkops import errors, followups, registry, runner, services
from bulkops.models import BulkOperation
from bulkops.services import Request
from tickets.models import Ticket

from ..factories import AgentFactory, StaffFactory, TicketFactory, UserFactory

RESOLVE = {"resource_type": "tickets", "operation_type": "update_status", "operation_data": {"status": "resolved"}}


def queued_jobs():
    return django_rq.get_queue("bulkops").count


@pytest.mark.django_db
def test_start_operation_stores_every_item_in_request_order(agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        op, created = services.start_operation(agent, Request(ids=[30, 10, 20], batch_size=7, **RESOLVE))
    assert created
    assert (op.status, op.total_items, op.batch_size, op.slices) == ("pending", 3, 7, 1)
    assert list(op.items.values_list("position", "target_id", "status", "payload")) == [
        (0, "30", "pending", None),
        (1, "10", "pending", None),
        (2, "20", "pending", None),
    ]
    assert queued_jobs() == 1


@pytest.mark.django_db
@override_settings(BULKOPS_SLICE_MIN_ITEMS=2, BULKOPS_MAX_SLICES=3)
def test_a_large_operation_is_split_into_a_few_slices(agent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        op, _ = services.start_operation(agent, Request(ids=list(range(1, 11)), **RESOLVE))
    assert op.slices == 3
    assert queued_jobs() == 3


@pytest.mark.django_db
def test_start_operation_stores_per_item_payloads(agent):
    payloads = [{"status": "closed"}, {"status": "pending"}]
    op, _ = services.start_operation(agent, Request(ids=[1, 2], payloads=payloads, **RESOLVE))
    assert list(op.items.values_list("payload", flat=True)) == payloads


@pytest.mark.django_db
def test_items_go_through_copy_whatever_their_ids_and_payloads_hold(agent):
    # COPY's text format gives tabs, newlines and backslashes a meaning: they must arrive intact.
    payloads = [{"status": "closed", "note": "a\tb\nc\\d \\N é"}, None, {"status": "open"}]
    ids = [3, 2**62, 1]
    op, _ = services.start_operation(agent, Request(ids=ids, payloads=payloads, **RESOLVE))
    assert list(op.items.order_by("position").values_list("position", "target_id", "payload", "status")) == [
        (0, "3", payloads[0], "pending"),
        (1, str(2**62), None, "pending"),
        (2, "1", payloads[2], "pending"),
    ]


@pytest.mark.django_db
def test_a_selection_counts_the_rows_its_query_finds_when_the_items_are_written(agent):
    tickets = TicketFactory.create_batch(3)
    selection = services.Selection(Ticket.objects.filter(pk__in=[t.pk for t in tickets]), count=4)
    op, _ = services.start_operation(agent, Request(ids=selection, **RESOLVE))  # one row went in between
    op.refresh_from_db()
    assert op.total_items == 3
    assert list(op.items.order_by("position").values_list("target_id", flat=True)) == [str(t.pk) for t in tickets]


@pytest.mark.django_db
@override_settings(BULKOPS_MAX_ACTIVE_PER_USER=1)
def test_start_operation_refuses_beyond_the_active_cap(agent):
    services.start_operation(agent, Request(ids=[1], **RESOLVE))
    with pytest.raises(errors.TooManyActive):
        services.start_operation(agent, Request(ids=[2], **RESOLVE))
    assert BulkOperation.objects.count() == 1
    services.start_operation(AgentFactory(), Request(ids=[2], **RESOLVE))  # the cap is per user


@pytest.mark.django_db
def test_an_idempotency_key_finds_the_operation_it_made(agent):
    first, _ = services.start_operation(agent, Request(ids=[1], **RESOLVE), idempotency_key="k", body_fingerprint="a")
    again, created = services.start_operation(
        agent, Request(ids=[1], **RESOLVE), idempotency_key="k", body_fingerprint="a"
    )
    assert (again.pk, created) == (first.pk, False)
    with pytest.raises(errors.IdempotencyKeyReused):
        services.start_operation(agent, Request(ids=[2], **RESOLVE), idempotency_key="k", body_fingerprint="b")


@pytest.mark.django_db
def test_an_expired_idempotency_key_is_freed_for_a_new_operation(agent):
    first, _ = services.start_operation(agent, Request(ids=[1], **RESOLVE), idempotency_key="k", body_fingerprint="a")
    BulkOperation.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    second, created = services.start_operation(
        agent, Request(ids=[1], **RESOLVE), idempotency_key="k", body_fingerprint="b"
    )
    assert created and second.pk != first.pk
    first.refresh_from_db()
    assert first.idempotency_key is None


@pytest.mark.django_db
def test_get_operation_shows_own_operations_and_all_to_staff(agent):
    op, _ = services.start_operation(agent, Request(ids=[1], **RESOLVE))
    assert services.get_operation(agent, op.pk) == op
    assert services.get_operation(StaffFactory(), op.pk) == op
    with pytest.raises(errors.NotFound):
        services.get_operation(UserFactory(), op.pk)


@pytest.mark.django_db
def test_cancel_operation_cancels_a_pending_operation_at_once(agent):
    op, _ = services.start_operation(agent, Request(ids=[1, 2], **RESOLVE))
    op = services.cancel_operation(agent, op.pk)
    assert (op.status, op.skipped_items, op.processed_items) == ("cancelled", 2, 0)
    assert op.cancelled_at and op.completed_at
    assert set(op.items.values_list("status", "error_code")) == {("skipped", "CANCELLED")}


@pytest.mark.django_db
def test_cancel_operation_only_marks_a_running_operation_cancelling(agent):
    op, _ = services.start_operation(agent, Request(ids=[1, 2], **RESOLVE))
    BulkOperation.objects.filter(pk=op.pk).update(status="in_progress")
    op = services.cancel_operation(agent, op.pk)
    assert (op.status, op.skipped_items) == ("cancelling", 0)
    assert set(op.items.values_list("status", flat=True)) == {"pending"}


@pytest.mark.django_db
def test_cancel_operation_refuses_finished_and_foreign_operations(agent):
    op, _ = services.start_operation(agent, Request(ids=[1], **RESOLVE))
    with pytest.raises(errors.NotFound):
        services.cancel_operation(UserFactory(), op.pk)
    BulkOperation.objects.filter(pk=op.pk).update(status="completed")
    with pytest.raises(errors.Conflict):
        services.cancel_operation(agent, op.pk)


@pytest.mark.parametrize(
    ("before", "result", "payload"),
    [
        (
            {"status": "open", "version": 3},
            {"changed": True, "version": 4},
            {"fields": {"status": "open"}, "version": 4},
        ),
        ({"status": "open", "version": 3}, {"changed": False, "version": 3}, None),
        ({}, {"changed": True, "version": 2}, None),
        (None, None, None),
    ],
)
def test_restore_payload_puts_back_before_at_the_version_after(before, result, payload):
    assert services.restore_payload(before, result) == payload


def finished(user, *, statuses, **request):
    """An operation that 'ran': its items have the given statuses."""
    op, _ = services.start_operation(user, Request(ids=list(range(1, len(statuses) + 1)), **{**RESOLVE, **request}))
    for position, status in enumerate(statuses):
        op.items.filter(position=position).update(status=status, error_code="NOT_FOUND" if status == "failed" else "")
    BulkOperation.objects.filter(pk=op.pk).update(status="partial")
    op.refresh_from_db()
    return op


@pytest.mark.django_db
def test_retry_operation_copies_type_data_mode_and_payloads_of_the_failed_items(agent):
    payloads = [{"status": "closed"}, {"status": "pending"}, {"status": "open"}]
    original = finished(
        agent,
        statuses=["succeeded", "failed", "failed"],
        payloads=payloads,
        mode="atomic",
        batch_size=9,
        metadata={"description": "first go"},
    )
    retry, created = followups.retry_operation(agent, original.pk)
    assert created
    assert (retry.retry_of, retry.operation_type, retry.operation_data) == (
        original,
        "update_status",
        {"status": "resolved"},
    )
    assert (retry.mode, retry.batch_size, retry.metadata, retry.execution) == (
        "atomic",
        9,
        {"description": "first go"},
        "async",
    )
    assert list(retry.items.values_list("position", "target_id", "payload")) == [
        (0, "2", payloads[1]),
        (1, "3", payloads[2]),
    ]


@pytest.mark.django_db
def test_retry_operation_takes_a_new_reason(agent):
    original = finished(agent, statuses=["failed"])
    retry, _ = followups.retry_operation(agent, original.pk, metadata={"description": "second go"})
    assert retry.metadata == {"description": "second go"}


@pytest.mark.django_db
def test_retry_operation_refuses_what_cannot_be_retried(agent):
    with pytest.raises(errors.Conflict, match="Nothing to retry"):
        followups.retry_operation(agent, finished(agent, statuses=["succeeded", "skipped"]).pk)
    running, _ = services.start_operation(agent, Request(ids=[1], **RESOLVE))
    with pytest.raises(errors.Conflict, match="once it has finished"):
        followups.retry_operation(agent, running.pk)
    with pytest.raises(errors.NotFound):
        followups.retry_operation(UserFactory(), running.pk)
    gone = finished(agent, statuses=["failed"])
    BulkOperation.objects.filter(pk=gone.pk).update(operation_type="no_longer_exists")
    with pytest.raises(errors.Conflict, match="cannot be retried"):
        followups.retry_operation(agent, gone.pk)


@pytest.mark.django_db
def test_revert_operation_builds_one_item_per_changed_record(agent):
    ticket = TicketFactory()
    original = finished(agent, statuses=["succeeded", "succeeded", "failed"])
    original.items.filter(position=0).update(
        target_id=str(ticket.pk), before={"status": "open", "version": 1}, result={"changed": True, "version": 2}
    )
    original.items.filter(position=1).update(before=None, result={"changed": False, "version": 1})
    op, created = followups.revert_operation(agent, original.pk)
    assert created
    assert (op.operation_type, op.reverts, op.execution, op.batch_size) == ("revert", original, "async", 50)
    assert op.metadata == {"description": f"Revert of bulk operation {original.pk}"}
    assert list(op.items.values_list("target_id", "payload")) == [
        (str(ticket.pk), {"fields": {"status": "open"}, "version": 2})
    ]


@pytest.mark.django_db
def test_revert_operation_refuses_resources_without_a_revert(agent):
    original = finished(agent, statuses=["succeeded"], resource_type="mixed", operation_type="batch")
    with pytest.raises(errors.Conflict, match="cannot be reverted"):
        followups.revert_operation(agent, original.pk)


# --- follow-ups run once per original; counts tell the truth (SPEC §11) ----------------------


def finished_operation(user, ids, operation_type="add_comment", data=None):
    """A synchronous operation over `ids`, finished by the time it returns."""
    request = Request(resource_type="tickets", operation_type=operation_type, ids=ids,
                      operation_data=data or {"body": "Looked at"}, execution="sync")  # fmt: skip
    return services.start_operation(user, request)[0]


def at_once(count, call):
    """`call()` from `count` threads released together; the results (or error codes) in a list."""
    barrier, outcomes = threading.Barrier(count), []

    def run():
        try:
            barrier.wait(10)
            outcomes.append(call().pk)
        except errors.ItemError as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_retries_of_one_operation_make_one_retry():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    original = finished_operation(agent, [t.pk for t in tickets] + [999_999])  # one item fails NOT_FOUND
    outcomes = at_once(10, lambda: followups.retry_operation(agent, original.pk)[0])
    assert outcomes.count("CONFLICT") == 9
    assert BulkOperation.objects.filter(retry_of=original).count() == 1


@pytest.mark.django_db(transaction=True)
def test_three_users_reverting_one_operation_at_once_make_one_revert():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(2)
    original = finished_operation(agent, [t.pk for t in tickets], "update_status", {"status": "resolved"})
    reverters = [agent, StaffFactory(), StaffFactory()]
    outcomes = at_once(3, lambda: followups.revert_operation(reverters.pop(), original.pk)[0])
    assert outcomes.count("CONFLICT") == 2
    assert BulkOperation.objects.filter(reverts=original).count() == 1


@pytest.mark.django_db
def test_a_second_retry_is_a_conflict_naming_the_first():
    agent = AgentFactory()
    original = finished_operation(agent, [TicketFactory().pk, 999_999])
    first, _ = followups.retry_operation(agent, original.pk)
    with pytest.raises(errors.Conflict) as refused:
        followups.retry_operation(StaffFactory(), original.pk)
    assert str(first.pk) in refused.value.message


@pytest.mark.django_db
def test_a_cancel_after_the_last_item_leaves_the_operation_completed(agent):
    ticket = TicketFactory()
    op, _ = services.start_operation(agent, Request(ids=[ticket.pk], **RESOLVE))
    runner.start(op.pk)  # a worker has it
    runner.run_chunk(op, registry.get("tickets", "update_status"), runner.context_for(op), 0, 1)  # the last item
    cancelled = services.cancel_operation(agent, op.pk)
    assert cancelled.status == "cancelling"
    runner.run_slice(op.pk, 0)  # the worker notices the cancel with nothing left to skip
    op.refresh_from_db()
    assert (op.status, op.successful_items, op.skipped_items, op.cancelled_at) == ("completed", 1, 0, None)


@pytest.mark.django_db
def test_a_cancelled_operation_shows_the_share_it_processed(agent):
    tickets = TicketFactory.create_batch(30)
    op, _ = services.start_operation(agent, Request(ids=[t.pk for t in tickets], batch_size=4, **RESOLVE))
    runner.start(op.pk)
    runner.run_chunk(op, registry.get("tickets", "update_status"), runner.context_for(op), 0, 30)
    services.cancel_operation(agent, op.pk)
    runner.run_slice(op.pk, 0)
    op.refresh_from_db()
    assert (op.status, op.processed_items, op.skipped_items) == ("cancelled", 4, 26)
    assert op.progress_percentage == 13  # 4 of 30, not 100
