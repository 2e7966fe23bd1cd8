"""Revert and retry: POST /api/v1/bulk-operations/{id}/revert/ and …/retry/ (SPEC §3.4, §4)."""

import threading

import pytest
from django.db import connections

from bulkops import errors, followups, services
from bulkops.models import BulkOperation
from metrics.models import Metric
from tickets.models import Comment, Ticket, TicketEvent

from ..factories import AgentFactory, CategoryFactory, MetricFactory, StaffFactory, TicketFactory, UserFactory
from .helpers import approve_if_awaiting, work_off

ANY = "/api/v1/bulk-operations/"
TICKETS = "/api/v1/tickets/bulk-operations/"

pytestmark = pytest.mark.django_db(transaction=True)


def run(client, body, url=TICKETS):
    """Create an async operation, let a worker finish it, return its id."""
    response = client.post(url, body, format="json")
    assert response.status_code == 202, response.json()
    approve_if_awaiting(response.json()["operation_id"])
    work_off()
    return response.json()["operation_id"]


def revert(client, op_id, body=None, **headers):
    return client.post(f"{ANY}{op_id}/revert/", body or {}, format="json", **headers)


def revert_and_run(client, op_id):
    response = revert(client, op_id)
    assert response.status_code == 202, response.json()
    work_off()
    return BulkOperation.objects.get(pk=response.json()["operation_id"])


def statuses(tickets):
    return [Ticket.objects.get(pk=t.pk).status for t in tickets]


@pytest.fixture
def client(client_for):
    agent = AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])
    client = client_for(agent)
    client.user = agent
    return client


def test_revert_restores_the_old_values_and_says_why_in_the_history(client):
    tickets = [TicketFactory(), TicketFactory(status="pending")]
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    response = revert(client, original)
    assert response.status_code == 202, response.json()
    assert set(response.json()) == {
        "operation_id",
        "status",
        "total_items",
        "created_at",
        "estimated_completion",
        "links",
    }
    assert response["Location"] == response.json()["links"]["self"]
    work_off()
    op = BulkOperation.objects.get(pk=response.json()["operation_id"])
    assert (op.operation_type, str(op.reverts_id), op.status, op.successful_items) == (
        "revert", original, "completed", 2,
    )  # fmt: skip
    assert statuses(tickets) == ["open", "pending"]
    assert set(Ticket.objects.values_list("version", flat=True)) == {3}
    events = TicketEvent.objects.filter(bulk_operation=op)
    assert set(events.values_list("field", "old_value", "new_value")) == {
        ("status", "resolved", "open"),
        ("status", "resolved", "pending"),
    }
    assert set(events.values_list("reason", flat=True)) == {f"Revert of bulk operation {original}"}
    history = client.get(f"/api/v1/tickets/{tickets[0].pk}/history/").json()["results"]
    assert history[-1]["reason"] == f"Revert of bulk operation {original}"
    assert client.get(f"{ANY}{op.pk}/").json()["reverts"] == original


def test_a_record_whose_restored_field_changed_since_fails_conflict_and_the_rest_are_restored(client):
    moved, kept = TicketFactory(), TicketFactory()
    original = run(client, {"ticket_ids": [moved.pk, kept.pk], "operation_type": "set_priority",
                            "operation_data": {"priority": "urgent"}})  # fmt: skip
    assert client.patch(f"/api/v1/tickets/{moved.pk}/", {"priority": "high"}, format="json").status_code == 200
    op = revert_and_run(client, original)
    assert (op.status, op.successful_items, op.failed_items) == ("partial", 1, 1)
    failed = op.items.get(status="failed")
    assert (failed.target_id, failed.error_code) == (str(moved.pk), "CONFLICT")
    assert failed.error_message == f"Ticket {moved.pk}: priority changed since"
    assert list(Ticket.objects.order_by("pk").values_list("priority", flat=True)) == ["high", "normal"]


def test_a_later_change_to_another_field_does_not_stand_in_the_way_of_a_revert(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "set_priority",
                            "operation_data": {"priority": "urgent"}})  # fmt: skip
    assert client.patch(f"/api/v1/tickets/{ticket.pk}/", {"title": "edited"}, format="json").status_code == 200
    op = revert_and_run(client, original)
    assert (op.status, op.successful_items) == ("completed", 1)
    assert Ticket.objects.filter(pk=ticket.pk).values_list("priority", "title", "version").get() == (
        "normal", "edited", 4,
    )  # fmt: skip


def test_a_field_set_back_to_what_the_operation_set_is_not_a_conflict(client):
    """Changed and changed back: the value the revert would replace is the operation's own."""
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "set_priority",
                            "operation_data": {"priority": "urgent"}})  # fmt: skip
    for priority in ("high", "urgent"):
        client.patch(f"/api/v1/tickets/{ticket.pk}/", {"priority": priority}, format="json")
    assert revert_and_run(client, original).status == "completed"
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_a_ticket_deleted_again_since_its_restore_is_a_conflict_for_the_revert_of_the_delete(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "delete"})
    assert client.post(f"{ANY}{original}/revert/").status_code == 202
    work_off()
    run(client, {"ticket_ids": [ticket.pk], "operation_type": "delete"})
    first_revert = BulkOperation.objects.get(reverts_id=original)
    op = revert_and_run(client, first_revert.pk)  # would delete it again: it is deleted, at another time
    assert (op.status, op.items.get().error_code) == ("failed", "CONFLICT")
    assert op.items.get().error_message == f"Ticket {ticket.pk}: deleted_at, is_deleted changed since"


def test_items_that_changed_nothing_are_left_out_of_the_revert(client):
    changed, unchanged = TicketFactory(), TicketFactory(status="resolved")
    original = run(client, {"ticket_ids": [changed.pk, unchanged.pk, 424_242], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    op = revert_and_run(client, original)
    assert list(op.items.values_list("target_id", flat=True)) == [str(changed.pk)]
    assert statuses([changed, unchanged]) == ["open", "resolved"]


def test_revert_reopens_closed_tickets_although_closed_is_terminal(client):
    tickets = TicketFactory.create_batch(2)
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "update_status",
                            "operation_data": {"status": "closed"}})  # fmt: skip
    op = revert_and_run(client, original)
    assert op.status == "completed"
    assert statuses(tickets) == ["open", "open"]


def test_revert_restores_assignee_and_category_including_none(client):
    category = CategoryFactory()
    assignee = AgentFactory()
    before = TicketFactory(category=category)
    unset = TicketFactory()
    original = run(client, {"ticket_ids": [before.pk, unset.pk], "operation_type": "update_fields",
                            "operation_data": {"category_id": None, "assignee_id": assignee.pk}})  # fmt: skip
    revert_and_run(client, original)
    assert list(Ticket.objects.order_by("pk").values_list("category_id", "assignee_id")) == [
        (category.pk, None),
        (None, None),
    ]


def test_revert_of_add_comment_deletes_the_comments_it_made(client):
    tickets = TicketFactory.create_batch(2)
    Comment.objects.create(ticket=tickets[0], author=client.user, body="kept")
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "add_comment",
                            "operation_data": {"body": "We are on it"}})  # fmt: skip
    assert Comment.objects.filter(body="We are on it").count() == 2
    op = revert_and_run(client, original)
    assert (op.status, op.successful_items) == ("completed", 2)
    assert list(Comment.objects.values_list("body", flat=True)) == ["kept"]


def test_a_comment_deleted_since_fails_conflict(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "add_comment",
                            "operation_data": {"body": "oops"}})  # fmt: skip
    Comment.objects.all().delete()
    op = revert_and_run(client, original)
    assert (op.status, op.items.get().error_code) == ("failed", "CONFLICT")


def test_revert_of_delete_restores_the_tickets(client):
    tickets = TicketFactory.create_batch(2)
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "delete"})
    assert Ticket.objects.filter(is_deleted=True).count() == 2
    op = revert_and_run(client, original)
    assert op.status == "completed"
    assert list(Ticket.objects.values_list("is_deleted", "deleted_at")) == [(False, None), (False, None)]
    assert client.get(f"/api/v1/tickets/{tickets[0].pk}/").status_code == 200


def test_revert_of_restore_deletes_the_tickets_again(client):
    ticket = TicketFactory(is_deleted=True)
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "restore"})
    assert Ticket.objects.get(pk=ticket.pk).is_deleted is False
    op = revert_and_run(client, original)
    assert op.status == "completed"
    assert Ticket.objects.get(pk=ticket.pk).is_deleted is True


def test_a_revert_of_a_revert_does_the_change_again(client):
    tickets = TicketFactory.create_batch(2)
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "update_status",
                            "operation_data": {"status": "in_progress"}})  # fmt: skip
    first = revert_and_run(client, original)
    assert statuses(tickets) == ["open", "open"]
    second = revert_and_run(client, first.pk)
    assert (str(second.reverts_id), second.status) == (str(first.pk), "completed")
    assert statuses(tickets) == ["in_progress", "in_progress"]
    assert set(Ticket.objects.values_list("version", flat=True)) == {4}


def test_a_revert_of_a_comment_revert_adds_the_comment_back(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "add_comment",
                            "operation_data": {"body": "Back again"}})  # fmt: skip
    first = revert_and_run(client, original)
    assert ticket.comments.count() == 0
    second = revert_and_run(client, first.pk)
    assert second.status == "completed"
    assert list(ticket.comments.values_list("body", flat=True)) == ["Back again"]
    third = revert_and_run(client, second.pk)
    assert (third.status, ticket.comments.count()) == ("completed", 0)


def test_revert_of_a_metric_operation_restores_verification(user, client_for):
    client = client_for(user)
    metrics = MetricFactory.create_batch(2, owner=user, verification="requested")
    original = run(client, {"metric_ids": [str(m.pk) for m in metrics], "operation_type": "set_verification",
                            "operation_data": {"verification": "verified"}}, url="/api/v1/metrics/bulk-operations/")  # fmt: skip
    Metric.objects.filter(pk=metrics[1].pk).update(verification="in_review", version=10)  # changed since
    op = revert_and_run(client, original)
    assert (op.resource_type, op.successful_items, op.failed_items) == ("metrics", 1, 1)
    assert op.items.get(status="failed").error_code == "CONFLICT"
    assert Metric.objects.get(pk=metrics[0].pk).verification == "requested"
    assert Metric.objects.get(pk=metrics[1].pk).verification == "in_review"


def test_a_metric_whose_other_fields_changed_since_is_still_reverted(user, client_for):
    client = client_for(user)
    metric = MetricFactory(owner=user, verification="requested")
    original = run(client, {"metric_ids": [str(metric.pk)], "operation_type": "set_verification",
                            "operation_data": {"verification": "verified"}}, url="/api/v1/metrics/bulk-operations/")  # fmt: skip
    assert client.patch(f"/api/v1/metrics/{metric.pk}/", {"description": "new"}, format="json").status_code == 200
    op = revert_and_run(client, original)
    assert (op.status, op.successful_items) == ("completed", 1)
    assert Metric.objects.filter(pk=metric.pk).values_list("verification", "description").get() == (
        "requested", "new",
    )  # fmt: skip


def test_staff_may_revert_another_users_operation(client, client_for):
    tickets = TicketFactory.create_batch(2)
    original = run(client, {"ticket_ids": [t.pk for t in tickets], "operation_type": "set_priority",
                            "operation_data": {"priority": "low"}})  # fmt: skip
    op = revert_and_run(client_for(StaffFactory()), original)
    assert op.status == "completed"
    assert set(Ticket.objects.values_list("priority", flat=True)) == {"normal"}


def test_a_requester_cannot_revert_what_they_may_not_change(client_for):
    """A requester's revert of another's change fails per item like their own change would."""
    requester = UserFactory()
    ticket = TicketFactory(requester=requester)
    agent_client = client_for(AgentFactory())
    original = run(agent_client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                                  "operation_data": {"status": "pending"}})  # fmt: skip
    BulkOperation.objects.filter(pk=original).update(user=requester)  # as if the requester had started it
    op = revert_and_run(client_for(requester), original)
    assert (op.status, op.items.get().error_code) == ("failed", "PERMISSION_DENIED")
    assert statuses([ticket]) == ["pending"]


def test_revert_answers_409_when_the_original_has_not_finished(client):
    ticket = TicketFactory()
    response = client.post(TICKETS, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                                     "operation_data": {"status": "resolved"}}, format="json")  # fmt: skip
    response = revert(client, response.json()["operation_id"])
    assert response.status_code == 409
    assert "once it has finished" in response.json()["error"]["message"]
    assert BulkOperation.objects.count() == 1


def test_revert_answers_409_for_a_dry_run(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}, "dry_run": True})  # fmt: skip
    response = revert(client, original)
    assert response.status_code == 409
    assert "dry run" in response.json()["error"]["message"]


def test_revert_answers_409_when_nothing_changed(client):
    original = run(client, {"ticket_ids": [777_777], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    response = revert(client, original)
    assert response.status_code == 409
    assert "Nothing to revert" in response.json()["error"]["message"]
    assert BulkOperation.objects.count() == 1


def test_revert_answers_409_once_already_reverted(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    first = revert_and_run(client, original)
    response = revert(client, original)
    assert response.status_code == 409
    assert str(first.pk) in response.json()["error"]["message"]


def test_revert_with_an_idempotency_key_is_made_once(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    first = revert(client, original, HTTP_IDEMPOTENCY_KEY="undo-1")
    again = revert(client, original, HTTP_IDEMPOTENCY_KEY="undo-1")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["operation_id"] == again.json()["operation_id"]
    assert BulkOperation.objects.filter(reverts_id=original).count() == 1


def test_revert_takes_a_reason_and_refuses_unknown_fields(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    assert revert(client, original, {"colour": "red"}).status_code == 400
    response = revert(client, original, {"metadata": {"description": "Wrong tickets"}})
    assert response.status_code == 202
    work_off()
    assert set(TicketEvent.objects.filter(bulk_operation_id=response.json()["operation_id"]).values_list(
        "reason", flat=True)) == {"Wrong tickets"}  # fmt: skip


def test_two_revert_requests_at_once_make_one_revert(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    user = client.user
    barrier = threading.Barrier(2)
    outcomes = []

    def revert_now():
        try:
            barrier.wait(5)
            outcomes.append(followups.revert_operation(user, original)[0].pk)
        except errors.Conflict as exc:
            outcomes.append(exc.code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=revert_now) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes, key=str).count("CONFLICT") == 1
    assert BulkOperation.objects.filter(reverts_id=original).count() == 1


# --- revert preview (dry run) -----------------------------------------------------------------


def test_a_dry_run_revert_previews_restored_and_conflicting_items_and_changes_nothing(client):
    moved, kept = TicketFactory(), TicketFactory()
    original = run(client, {"ticket_ids": [moved.pk, kept.pk], "operation_type": "set_priority",
                            "operation_data": {"priority": "urgent"}})  # fmt: skip
    client.patch(f"/api/v1/tickets/{moved.pk}/", {"priority": "low"}, format="json")
    response = revert(client, original, {"dry_run": True})
    assert response.status_code == 202, response.json()
    work_off()
    status = client.get(response.json()["links"]["self"]).json()
    assert (status["dry_run"], status["status"], status["successful_items"], status["failed_items"]) == (
        True, "partial", 1, 1,
    )  # fmt: skip
    assert [(e["item_id"], e["error_code"]) for e in status["errors"]] == [(str(moved.pk), "CONFLICT")]
    assert list(Ticket.objects.order_by("pk").values_list("priority", flat=True)) == ["low", "urgent"]
    assert TicketEvent.objects.filter(bulk_operation_id=status["operation_id"]).count() == 0


def test_a_dry_run_revert_does_not_count_as_the_revert(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    assert revert(client, original, {"dry_run": True}).status_code == 202
    work_off()
    op = revert_and_run(client, original)
    assert (op.dry_run, op.status) == (False, "completed")
    assert statuses([ticket]) == ["open"]
    assert revert(client, original, {"dry_run": True}).status_code == 409  # reverted: nothing left to preview


def test_revert_refuses_a_dry_run_that_is_not_a_boolean(client):
    ticket = TicketFactory()
    original = run(client, {"ticket_ids": [ticket.pk], "operation_type": "update_status",
                            "operation_data": {"status": "resolved"}})  # fmt: skip
    response = revert(client, original, {"dry_run": [1]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert BulkOperation.objects.count() == 1


# --- retry: which failures ----------------------------------------------------------------------


def retry(client, op_id, body=None):
    return client.post(f"{ANY}{op_id}/retry/", body or {}, format="json")


def failing(client):
    """An operation whose items failed INVALID_TRANSITION (closed), CONFLICT and NOT_FOUND."""
    closed, busy = TicketFactory(status="closed"), TicketFactory()
    op_id = run(client, {"ticket_ids": [closed.pk, busy.pk, 616_161], "operation_type": "update_status",
                         "operation_data": {"status": "resolved"}})  # fmt: skip
    BulkOperation.objects.get(pk=op_id).items.filter(position=1).update(
        status="failed", error_code="CONFLICT", error_message="moved"
    )  # as if another change had held it
    return op_id, closed, busy


def test_retry_by_default_takes_only_the_failures_a_retry_can_change(client):
    op_id, closed, busy = failing(client)
    response = retry(client, op_id)
    assert response.status_code == 202, response.json()
    new = BulkOperation.objects.get(pk=response.json()["operation_id"])
    assert list(new.items.values_list("target_id", flat=True)) == [str(busy.pk), "616161"]


def test_retry_takes_the_codes_asked_for(client):
    op_id, closed, busy = failing(client)
    response = retry(client, op_id, {"codes": ["INVALID_TRANSITION"]})
    assert response.status_code == 202, response.json()
    new = BulkOperation.objects.get(pk=response.json()["operation_id"])
    assert list(new.items.values_list("target_id", flat=True)) == [str(closed.pk)]


def test_retry_is_409_when_no_item_failed_with_the_codes_asked_for(client):
    op_id, _, _ = failing(client)
    response = retry(client, op_id, {"codes": ["LOCK_TIMEOUT", "PERMISSION_DENIED"]})
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "CONFLICT",
        "message": "Nothing to retry: no item of this operation failed with LOCK_TIMEOUT, PERMISSION_DENIED",
        "details": None,
    }
    assert BulkOperation.objects.count() == 1


@pytest.mark.parametrize("codes", [[], ["NOPE"], "CONFLICT", [None]])
def test_retry_refuses_codes_that_are_not_a_list_of_error_codes(client, codes):
    op_id, _, _ = failing(client)
    response = retry(client, op_id, {"codes": codes})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "codes" in response.json()["error"]["details"]
    assert BulkOperation.objects.count() == 1


def test_retry_takes_items_a_cancel_skipped(client):
    tickets = TicketFactory.create_batch(2)
    op = services.start_operation(client.user, services.Request(
        resource_type="tickets", operation_type="set_priority", ids=[t.pk for t in tickets],
        operation_data={"priority": "high"}))[0]  # fmt: skip
    services.cancel_operation(client.user, op.pk)  # pending: every item skipped, CANCELLED
    response = retry(client, op.pk)
    assert response.status_code == 202, response.json()
    work_off()
    assert set(Ticket.objects.values_list("priority", flat=True)) == {"high"}
