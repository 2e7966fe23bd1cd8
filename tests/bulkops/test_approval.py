"""Four-eyes approval (SPEC §13): who must wait, who may approve or reject, and the races."""

import threading
from datetime import timedelta

import django_rq
import pytest
from django.db import connections
from django.utils import timezone

from bulkops import jobs
from bulkops.models import BulkOperation, Status
from tickets.models import Ticket

from ..conftest import api_client
from ..factories import AgentFactory, ApproverFactory, StaffFactory, TicketFactory
from .helpers import work_off

ANY = "/api/v1/bulk-operations/"
TICKETS = "/api/v1/tickets/bulk-operations/"
DELETE = {"operation_type": "delete"}
RESOLVE = {"operation_type": "update_status", "operation_data": {"status": "resolved"}}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def creator(db):
    return AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])


@pytest.fixture
def approver(db):
    return ApproverFactory()


@pytest.fixture
def tickets(db):
    return TicketFactory.create_batch(3)


def create(user, tickets, body=DELETE, **extra):
    return api_client(user).post(TICKETS, {"ticket_ids": [t.pk for t in tickets], **body, **extra}, format="json")


def awaiting(creator, tickets, **extra):
    response = create(creator, tickets, **extra)
    assert (response.status_code, response.json()["status"]) == (202, "awaiting_approval"), response.json()
    return response.json()["operation_id"]


def approve(user, op_id):
    return api_client(user).post(f"{ANY}{op_id}/approve/")


def reject(user, op_id, reason="Not on a Friday"):
    return api_client(user).post(f"{ANY}{op_id}/reject/", {"reason": reason}, format="json")


def error_of(response):
    return response.status_code, response.json()["error"]["code"]


def live_tickets():
    return Ticket.objects.filter(is_deleted=False).count()


# --- who must wait --------------------------------------------------------------------------


def test_a_delete_by_a_non_staff_user_awaits_approval_and_nothing_is_enqueued(creator, tickets):
    op_id = awaiting(creator, tickets)
    assert django_rq.get_queue("bulkops").count == 0
    op = BulkOperation.objects.get(pk=op_id)
    assert (op.status, op.estimated_completion, op.approved_by, op.approved_at) == (
        Status.AWAITING_APPROVAL, None, None, None,
    )  # fmt: skip
    work_off()
    assert live_tickets() == 3


def test_a_delete_by_staff_needs_no_approval(tickets):
    response = create(StaffFactory(), tickets)
    assert response.json()["status"] == "pending"
    work_off()
    assert live_tickets() == 0


def test_a_dry_run_delete_needs_no_approval(creator, tickets):
    assert create(creator, tickets, dry_run=True).json()["status"] == "pending"


def test_an_operation_of_as_many_items_as_the_threshold_awaits_approval(creator, tickets, settings):
    settings.BULKOPS_APPROVAL_THRESHOLD = 3
    assert create(creator, tickets, RESOLVE).json()["status"] == "awaiting_approval"
    assert create(creator, tickets[:2], RESOLVE).json()["status"] == "pending"


def test_a_threshold_of_0_turns_approval_off_for_all_but_deletes(creator, tickets, settings):
    settings.BULKOPS_APPROVAL_THRESHOLD = 0
    assert create(creator, tickets, RESOLVE).json()["status"] == "pending"
    assert create(creator, tickets).json()["status"] == "awaiting_approval"


def test_a_sync_operation_that_needs_approval_is_refused_and_nothing_stored(creator, tickets):
    response = create(creator, tickets, execution="sync")
    assert error_of(response) == (400, "VALIDATION_ERROR")
    assert response.json()["error"]["message"] == (
        "This operation needs another person's approval: use execution async, then ask an approver."
    )
    assert not BulkOperation.objects.exists()
    assert live_tickets() == 3


def test_operations_awaiting_approval_count_towards_the_active_cap(creator, tickets, settings):
    settings.BULKOPS_MAX_ACTIVE_PER_USER = 1
    awaiting(creator, tickets)
    assert error_of(create(creator, tickets, RESOLVE)) == (429, "TOO_MANY_ACTIVE_OPERATIONS")


# --- who sees them ------------------------------------------------------------------------


def test_approvers_see_every_users_operations_awaiting_approval(creator, approver, tickets):
    op_id = awaiting(creator, tickets)
    mine = create(approver, tickets, RESOLVE).json()["operation_id"]
    others = create(AgentFactory(), tickets, RESOLVE).json()["operation_id"]  # pending: not the approver's
    listed = api_client(approver).get(f"{ANY}?status=awaiting_approval").json()
    assert [op["operation_id"] for op in listed["operations"]] == [op_id]
    everything = api_client(approver).get(ANY).json()["operations"]
    assert {op["operation_id"] for op in everything} == {op_id, mine}
    assert others not in {op["operation_id"] for op in everything}
    status = api_client(approver).get(f"{ANY}{op_id}/").json()
    assert (status["status"], status["user"]) == ("awaiting_approval", creator.pk)


def test_a_user_without_the_permission_does_not_see_others_awaiting_operations(creator, tickets):
    op_id = awaiting(creator, tickets)
    stranger = AgentFactory()
    assert api_client(stranger).get(f"{ANY}?status=awaiting_approval").json()["total"] == 0
    assert error_of(api_client(stranger).get(f"{ANY}{op_id}/")) == (404, "NOT_FOUND")
    assert error_of(approve(stranger, op_id)) == (404, "NOT_FOUND")


def test_an_approver_may_not_cancel_another_users_operation(creator, approver, tickets):
    op_id = awaiting(creator, tickets)
    assert error_of(api_client(approver).post(f"{ANY}{op_id}/cancel/")) == (404, "NOT_FOUND")


# --- approve --------------------------------------------------------------------------------


def test_approve_enqueues_the_operation_and_records_the_approver(creator, approver, tickets):
    op_id = awaiting(creator, tickets)
    response = approve(approver, op_id)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["status"], body["approved_by"]) == ("pending", approver.pk)
    assert abs((timezone.now() - BulkOperation.objects.get().approved_at).total_seconds()) < 5
    work_off()
    op = BulkOperation.objects.get(pk=op_id)
    assert (op.status, op.successful_items, op.approved_by_id) == (Status.COMPLETED, 3, approver.pk)
    assert live_tickets() == 0
    # the approver still sees what they approved
    assert api_client(approver).get(f"{ANY}{op_id}/").json()["approved_by"] == approver.pk


def test_approve_of_an_operation_whose_run_at_is_ahead_schedules_it(creator, approver, tickets):
    run_at = timezone.now() + timedelta(hours=1)
    op_id = awaiting(creator, tickets, run_at=run_at.isoformat())
    assert approve(approver, op_id).json()["status"] == "scheduled"
    assert django_rq.get_queue("bulkops").count == 0
    assert jobs.recover_stale() == []  # its job waits in rq's scheduled registry


def test_the_creator_may_never_approve_their_own_operation(tickets):
    creator = ApproverFactory(perms=["bulkops.approve_bulkoperation", "tickets.delete_ticket"])
    op_id = awaiting(creator, tickets)
    response = approve(creator, op_id)
    assert error_of(response) == (403, "PERMISSION_DENIED")
    assert response.json()["error"]["message"] == "Another person must approve your operation"
    assert error_of(reject(creator, op_id)) == (403, "PERMISSION_DENIED")
    assert BulkOperation.objects.get().status == Status.AWAITING_APPROVAL


def test_approve_without_the_permission_is_refused(creator, tickets):
    op_id = awaiting(creator, tickets)
    assert error_of(approve(creator, op_id)) == (403, "PERMISSION_DENIED")


@pytest.mark.parametrize("verb", [approve, reject])
def test_approve_or_reject_from_any_other_status_is_409(creator, approver, tickets, verb):
    staff_op = create(StaffFactory(), tickets).json()["operation_id"]  # pending
    response = verb(approver, staff_op)
    assert error_of(response) == (409, "CONFLICT")
    assert response.json()["error"]["message"] == "Operation is pending, not awaiting approval"
    op_id = awaiting(creator, tickets)
    assert approve(approver, op_id).status_code == 202
    assert error_of(verb(ApproverFactory(), op_id)) == (409, "CONFLICT")


# --- reject ---------------------------------------------------------------------------------


def test_reject_cancels_and_skips_every_item_with_rejected(creator, approver, tickets):
    op_id = awaiting(creator, tickets)
    response = reject(approver, op_id, "Too many at once")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["skipped_items"], body["rejection_reason"]) == ("cancelled", 3, "Too many at once")
    assert body["approved_by"] is None
    op = BulkOperation.objects.get()
    assert set(op.items.values_list("status", "error_code", "error_message")) == {
        ("skipped", "REJECTED", "Rejected by an approver")
    }
    assert op.cancelled_at is not None
    work_off()
    assert live_tickets() == 3
    assert api_client(creator).get(f"{ANY}{op_id}/").json()["rejection_reason"] == "Too many at once"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": 12}, {"reason": "x", "why": "y"}])
def test_a_reject_without_a_reason_is_400(creator, approver, tickets, body):
    op_id = awaiting(creator, tickets)
    response = api_client(approver).post(f"{ANY}{op_id}/reject/", body, format="json")
    assert error_of(response) == (400, "VALIDATION_ERROR")
    assert BulkOperation.objects.get().status == Status.AWAITING_APPROVAL


# --- races, against the real PostgreSQL -----------------------------------------------------


def at_once(*calls):
    """Run each call in its own thread, released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_approvals_at_once_one_wins_the_other_is_409(creator, tickets):
    op_id = awaiting(creator, tickets)
    first, second = ApproverFactory(), ApproverFactory()
    for _ in range(3):  # the order varies run to run
        BulkOperation.objects.filter(pk=op_id).update(
            status=Status.AWAITING_APPROVAL, approved_by=None, approved_at=None
        )
        answers = at_once(lambda: approve(first, op_id), lambda: approve(second, op_id))
        assert sorted(a.status_code for a in answers) == [202, 409]
        winner = first if answers[0].status_code == 202 else second
        assert BulkOperation.objects.get().approved_by_id == winner.pk
    assert django_rq.get_queue("bulkops").count == 1  # one job under its fixed id
    work_off()
    assert (BulkOperation.objects.get().successful_items, live_tickets()) == (3, 0)


def test_approve_racing_cancel_ends_consistent(creator, approver, tickets):
    """Cancel first: the approval is 409. Approval first: the cancel finds it pending and
    cancels it at once. Either way no ticket changes and every item is skipped."""
    outcomes = set()
    for _ in range(4):
        op_id = awaiting(creator, tickets)
        approved, cancelled = at_once(
            lambda op_id=op_id: approve(approver, op_id),
            lambda op_id=op_id: api_client(creator).post(f"{ANY}{op_id}/cancel/"),
        )
        assert cancelled.status_code == 202
        assert approved.status_code in (202, 409)
        outcomes.add(approved.status_code)
        work_off()
        op = BulkOperation.objects.get(pk=op_id)
        assert (op.status, op.started_at, op.skipped_items) == (Status.CANCELLED, None, 3)
        assert set(op.items.values_list("status", "error_code")) == {("skipped", "CANCELLED")}
        assert op.approved_by_id == (approver.pk if approved.status_code == 202 else None)
    assert live_tickets() == 3


def test_approve_racing_reject_one_wins(creator, tickets):
    op_id = awaiting(creator, tickets)
    approved, rejected = at_once(lambda: approve(ApproverFactory(), op_id), lambda: reject(ApproverFactory(), op_id))
    assert sorted([approved.status_code, rejected.status_code]) in ([200, 409], [202, 409])
    work_off()
    op = BulkOperation.objects.get()
    if approved.status_code == 202:
        assert (op.status, live_tickets()) == (Status.COMPLETED, 0)
    else:
        assert (op.status, op.skipped_items, live_tickets()) == (Status.CANCELLED, 3, 3)
