"""The pages: /bulk-operations/ (history), /bulk-operations/{id}/ (progress) and its buttons,
and logging in and out."""

import re
import uuid

import pytest
from django.test import Client
from django.utils import timezone

from bulkops.models import BulkOperation
from tickets.models import Ticket

from ..factories import AgentFactory, ApproverFactory, BulkOperationFactory, StaffFactory, TicketFactory, UserFactory
from .helpers import double_click, hidden_inputs, work_off

pytestmark = pytest.mark.django_db


@pytest.fixture
def me(client):
    user = UserFactory()
    client.force_login(user)
    return user


def listed(response):
    return re.findall(r'href="/bulk-operations/([0-9a-f-]{36})/"', response.content.decode())


def finished(user, statuses, status="partial", **fields):
    return BulkOperationFactory(
        user=user, items=statuses, status=status, started_at=timezone.now(), completed_at=timezone.now(), **fields
    )


# --- history --------------------------------------------------------------------------------


def test_the_history_asks_for_a_login(client):
    assert client.get("/bulk-operations/")["Location"] == "/login/?next=/bulk-operations/"


def test_a_user_sees_only_their_own_operations_newest_first(client, me):
    older = BulkOperationFactory(user=me, created_at=timezone.now() - timezone.timedelta(hours=1))
    newer = BulkOperationFactory(user=me)
    BulkOperationFactory()
    assert listed(client.get("/bulk-operations/")) == [str(newer.pk), str(older.pk)]


def test_staff_see_everyone_and_may_filter_by_user(client):
    staff = StaffFactory()
    theirs = BulkOperationFactory()
    mine = BulkOperationFactory(user=staff)
    client.force_login(staff)
    assert set(listed(client.get("/bulk-operations/"))) == {str(theirs.pk), str(mine.pk)}
    assert listed(client.get(f"/bulk-operations/?user={theirs.user_id}")) == [str(theirs.pk)]


def test_a_user_is_not_offered_the_user_filter_nor_can_use_it(client, me):
    other = BulkOperationFactory()
    response = client.get(f"/bulk-operations/?user={other.user_id}")
    assert listed(response) == []
    assert 'name="user"' not in response.content.decode()


def test_the_history_filters_by_status_and_type(client, me):
    done = finished(me, ["succeeded"], status="completed")
    BulkOperationFactory(user=me)
    BulkOperationFactory(user=me, status="completed", operation_type="delete")
    assert listed(client.get("/bulk-operations/?status=completed&operation_type=update_status")) == [str(done.pk)]


def test_a_bad_history_filter_lists_nothing_and_says_why(client, me):
    BulkOperationFactory(user=me)
    response = client.get("/bulk-operations/?created_after=yesterday")
    assert response.status_code == 200
    assert listed(response) == []
    assert "Enter a valid date/time" in response.content.decode()


def test_the_history_is_paginated(client, me):
    BulkOperationFactory.create_batch(30, user=me)
    first, second = client.get("/bulk-operations/"), client.get("/bulk-operations/?page=2")
    assert (len(listed(first)), len(listed(second))) == (25, 5)
    assert "Page 1 of 2" in first.content.decode()


def test_the_history_shows_labels_and_progress(client, me):
    finished(me, ["succeeded", "failed"])
    content = client.get("/bulk-operations/").content.decode()
    assert ">Change status</a>" in content
    assert '<progress max="100" value="100"' in content


def test_the_history_filter_menus_offer_what_the_history_holds(client, me):
    BulkOperationFactory(user=me, operation_type="delete")
    BulkOperationFactory(operation_type="set_verification", resource_type="metrics")  # not mine
    content = client.get("/bulk-operations/").content.decode()
    assert '<option value="delete">Delete</option>' in content
    assert '<option value="tickets">tickets</option>' in content
    assert "set_verification" not in content and '"metrics"' not in content


# --- one operation ----------------------------------------------------------------------------


def test_an_unknown_or_another_users_operation_is_not_found(client, me):
    other = BulkOperationFactory()
    assert client.get(f"/bulk-operations/{other.pk}/").status_code == 404
    assert client.get(f"/bulk-operations/{uuid.uuid4()}/").status_code == 404
    assert client.get("/bulk-operations/not-a-uuid/").status_code == 404


def test_staff_may_open_anyones_operation(client):
    op = BulkOperationFactory()
    client.force_login(StaffFactory())
    assert client.get(f"/bulk-operations/{op.pk}/").status_code == 200


def test_a_running_operation_shows_progress_and_refreshes_itself_without_javascript(client, me):
    op = BulkOperationFactory(user=me, items=["succeeded", "failed", "pending", "pending"], status="in_progress")
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in content
    assert f'<a href="/bulk-operations/{op.pk}/">Refresh</a>' in content
    assert '<progress max="100" value="50"' in content
    assert '<dd data-field="processed_items">2</dd>' in content
    assert '<dd data-field="failed_items">1</dd>' in content
    assert 'aria-live="polite"' in content
    assert f'data-ws-path="/ws/bulk-operations/{op.pk}/"' in content
    assert f'data-status-url="/api/v1/bulk-operations/{op.pk}/"' in content
    assert "Cancel operation" in content
    assert "about " in content  # time left


def test_a_finished_operation_stops_refreshing_and_offers_revert_retry_and_csv(client, me):
    op = finished(me, ["succeeded", "failed"])
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "http-equiv" not in content
    assert ">Refresh</a>" not in content
    assert "Cancel operation" not in content
    assert f'action="/bulk-operations/{op.pk}/revert/"' in content
    assert f'action="/bulk-operations/{op.pk}/retry/"' in content
    assert f'href="http://testserver/api/v1/bulk-operations/{op.pk}/items.csv"' in content


def test_revert_and_retry_are_offered_only_where_they_apply(client, me):
    clean = finished(me, ["succeeded"], status="completed")
    failed = finished(me, ["failed"], status="failed")
    dry = finished(me, ["succeeded"], status="completed", dry_run=True)
    content = {op: client.get(f"/bulk-operations/{op.pk}/").content.decode() for op in (clean, failed, dry)}
    assert "/revert/" in content[clean] and "/retry/" not in content[clean]
    assert "/revert/" not in content[failed] and "/retry/" in content[failed]
    assert "/revert/" not in content[dry]


def test_the_error_table_shows_the_first_100_failures_and_links_to_all(client, me):
    op = finished(me, ["failed"] * 105, status="failed")
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "The first 100 of 105 failed items" in content
    assert content.count("<code>NOT_FOUND</code>") == 100
    assert f'href="http://testserver/api/v1/bulk-operations/{op.pk}/items/?status=failed"' in content


# --- cancel, revert, retry ---------------------------------------------------------------------


def test_cancel_stops_a_pending_operation_at_once(client, me):
    op = BulkOperationFactory(user=me, items=["pending"] * 3)
    response = client.post(f"/bulk-operations/{op.pk}/cancel/")
    assert response["Location"] == f"/bulk-operations/{op.pk}/"
    op.refresh_from_db()
    assert (op.status, op.skipped_items) == ("cancelled", 3)
    assert "Cancelled." in client.get(response["Location"]).content.decode()


def test_cancel_of_a_running_operation_asks_the_workers_to_stop(client, me):
    op = BulkOperationFactory(user=me, items=["succeeded", "pending"], status="in_progress")
    client.post(f"/bulk-operations/{op.pk}/cancel/")
    op.refresh_from_db()
    assert op.status == "cancelling"
    assert "Cancelling…" in client.get(f"/bulk-operations/{op.pk}/").content.decode()


def test_cancel_of_a_finished_operation_says_so(client, me):
    op = finished(me, ["succeeded"], status="completed")
    response = client.post(f"/bulk-operations/{op.pk}/cancel/", follow=True)
    assert "Nothing to cancel: operation already completed." in response.content.decode()


def test_pause_and_resume_buttons_pause_and_resume_a_running_operation(client, me):
    op = BulkOperationFactory(user=me, items=["succeeded", "pending"], status="in_progress")
    page = client.get(f"/bulk-operations/{op.pk}/")
    assert ">Pause</button>" in page.content.decode() and ">Resume</button>" not in page.content.decode()
    response = client.post(f"/bulk-operations/{op.pk}/pause/", hidden_inputs(page, "/pause/"), follow=True)
    content = response.content.decode()
    assert "Paused: each slice stops after its current chunk." in content
    assert ">Resume</button>" in content and ">Pause</button>" not in content
    assert "refreshes itself" not in content  # nothing moves while it is paused
    assert BulkOperation.objects.get(pk=op.pk).status == "paused"
    response = client.post(f"/bulk-operations/{op.pk}/resume/", hidden_inputs(response, "/resume/"), follow=True)
    assert "Resumed." in response.content.decode()
    assert BulkOperation.objects.get(pk=op.pk).status == "in_progress"


def test_a_resubmitted_pause_form_does_nothing_more_and_a_late_one_says_why(client, me):
    op = BulkOperationFactory(user=me, items=["pending"], status="in_progress")
    form = hidden_inputs(client.get(f"/bulk-operations/{op.pk}/"), "/pause/")
    client.post(f"/bulk-operations/{op.pk}/pause/", form)
    client.post(f"/bulk-operations/{op.pk}/resume/")
    client.post(f"/bulk-operations/{op.pk}/pause/", form)  # Back, then the same Pause again
    assert BulkOperation.objects.get(pk=op.pk).status == "in_progress"
    done = finished(me, ["succeeded"], status="completed")
    response = client.post(f"/bulk-operations/{done.pk}/pause/", follow=True)
    assert "Nothing to pause: operation is completed" in response.content.decode()
    assert ">Pause</button>" not in response.content.decode()


def test_no_one_can_cancel_revert_or_retry_another_users_operation(client, me):
    other = finished(UserFactory(), ["succeeded", "failed"])
    for verb in ("cancel", "pause", "resume", "revert", "retry"):
        assert client.post(f"/bulk-operations/{other.pk}/{verb}/").status_code == 404
    assert not BulkOperation.objects.exclude(pk=other.pk).exists()


def test_the_buttons_need_a_post_a_login_and_a_csrf_token(me):
    op = BulkOperationFactory(user=me, items=["pending"])
    anonymous = Client()
    assert anonymous.post(f"/bulk-operations/{op.pk}/cancel/")["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(me)
    assert strict.get(f"/bulk-operations/{op.pk}/cancel/").status_code == 405
    assert strict.post(f"/bulk-operations/{op.pk}/cancel/").status_code == 403
    op.refresh_from_db()
    assert op.status == "pending"


def test_revert_of_nothing_says_why_and_stays(client, me):
    op = finished(me, ["failed"], status="failed")
    response = client.post(f"/bulk-operations/{op.pk}/revert/", follow=True)
    assert response.redirect_chain == [(f"/bulk-operations/{op.pk}/", 302)]
    assert "Nothing to revert" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_revert_and_retry_start_new_operations_and_open_them():
    agent = AgentFactory()
    client = Client()
    client.force_login(agent)
    tickets = TicketFactory.create_batch(2, status="open")
    closed = TicketFactory(status="closed")
    response = client.post(
        "/tickets/bulk/",
        {
            "operation": "update_status",
            "ids": [t.pk for t in [*tickets, closed]],
            "step": "start",
            "data-status": "pending",
        },
    )
    work_off()
    original = BulkOperation.objects.get()

    response = client.post(f"/bulk-operations/{original.pk}/retry/", {"codes": ["INVALID_TRANSITION"]})
    retry = BulkOperation.objects.get(retry_of=original)
    assert response["Location"] == f"/bulk-operations/{retry.pk}/"
    assert list(retry.items.values_list("target_id", flat=True)) == [str(closed.pk)]

    response = client.post(f"/bulk-operations/{original.pk}/revert/")
    revert = BulkOperation.objects.get(reverts=original)
    assert response["Location"] == f"/bulk-operations/{revert.pk}/"
    work_off()
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == {"open"}
    content = client.get(f"/bulk-operations/{original.pk}/").content.decode()
    assert "Followed by:" in content


RESUBMITTED = "This form was submitted before: this is the operation it started; nothing new was started."


@pytest.fixture
def agent_client(client):
    client.force_login(AgentFactory())
    return client


def partly_done(client):
    """An operation started from /tickets/ and run: two tickets changed, a closed one failed."""
    tickets = TicketFactory.create_batch(2, status="open")
    closed = TicketFactory(status="closed")
    data = {"operation": "update_status", "ids": [t.pk for t in [*tickets, closed]], "data-status": "pending"}
    client.post("/tickets/bulk/", {**data, "step": "start"})
    work_off()
    return BulkOperation.objects.get(), tickets, closed


def revert_form(client, original):
    """The Start form of a revert: preview it from the operation's page, then the preview's page."""
    preview = client.post(f"/bulk-operations/{original.pk}/revert/", hidden_inputs(
        client.get(f"/bulk-operations/{original.pk}/"), "Preview revert…</button>"))  # fmt: skip
    work_off()
    return hidden_inputs(client.get(preview["Location"]), "Start revert</button>")


def retry_form(client, original):
    """The retry form as posted with the INVALID_TRANSITION failures ticked."""
    return {**hidden_inputs(client.get(f"/bulk-operations/{original.pk}/"), "Retry failed items</button>"),
            "codes": ["INVALID_TRANSITION"]}  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("verb", "form_of", "link"), [("revert", revert_form, "reverts"), ("retry", retry_form, "retry_of")]
)
def test_pressing_revert_or_retry_twice_starts_one_operation_and_shows_it(agent_client, verb, form_of, link):
    original, *_ = partly_done(agent_client)
    form = form_of(agent_client, original)
    first = agent_client.post(f"/bulk-operations/{original.pk}/{verb}/", form)
    again = agent_client.post(f"/bulk-operations/{original.pk}/{verb}/", form)
    follower = BulkOperation.objects.get(**{link: original}, dry_run=False)
    assert first["Location"] == again["Location"] == f"/bulk-operations/{follower.pk}/"
    assert RESUBMITTED in agent_client.get(again["Location"]).content.decode()
    assert BulkOperation.objects.filter(dry_run=False).count() == 2


@pytest.mark.django_db(transaction=True)
def test_reverting_twice_puts_each_ticket_back_once(agent_client):
    original, tickets, _ = partly_done(agent_client)
    form = revert_form(agent_client, original)
    for _ in range(2):
        agent_client.post(f"/bulk-operations/{original.pk}/revert/", form)
    work_off()
    revert = BulkOperation.objects.get(reverts=original, dry_run=False)
    assert (revert.status, revert.successful_items) == ("completed", 2)
    assert [t.version for t in Ticket.objects.filter(pk__in=[t.pk for t in tickets])] == [3, 3]


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_revert_starts_one_operation_and_both_clicks_land_on_it(agent_client):
    original, *_ = partly_done(agent_client)
    form = revert_form(agent_client, original)
    locations = double_click(original.user, f"/bulk-operations/{original.pk}/revert/", form)
    revert = BulkOperation.objects.get(reverts=original, dry_run=False)
    assert locations == [f"/bulk-operations/{revert.pk}/"] * 2


# --- revert preview, retry choice ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_revert_is_previewed_first_and_started_from_the_preview(agent_client):
    original, tickets, _ = partly_done(agent_client)
    Ticket.objects.filter(pk=tickets[0].pk).update(status="resolved")  # changed since: would conflict
    page = agent_client.get(f"/bulk-operations/{original.pk}/")
    assert "Preview revert…</button>" in page.content.decode() and "Start revert" not in page.content.decode()
    preview = agent_client.post(f"/bulk-operations/{original.pk}/revert/", hidden_inputs(page, "Preview revert…"))
    work_off()
    dry = BulkOperation.objects.get(reverts=original)
    assert preview["Location"] == f"/bulk-operations/{dry.pk}/"
    assert (dry.dry_run, dry.successful_items, dry.failed_items) == (True, 1, 1)
    content = agent_client.get(preview["Location"]).content.decode()
    assert "1 ticket would be restored; 1 would not" in content
    assert "<code>CONFLICT</code>" in content
    assert "Retry failed items" not in content  # a preview's failures are the revert's to show
    assert f'action="/bulk-operations/{original.pk}/revert/"' in content
    assert list(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == [
        "resolved", "pending",
    ]  # fmt: skip
    started = agent_client.post(f"/bulk-operations/{original.pk}/revert/", hidden_inputs(
        agent_client.get(preview["Location"]), "Start revert</button>"))  # fmt: skip
    work_off()
    revert = BulkOperation.objects.get(reverts=original, dry_run=False)
    assert started["Location"] == f"/bulk-operations/{revert.pk}/"
    assert Ticket.objects.get(pk=tickets[1].pk).status == "open"


@pytest.mark.django_db(transaction=True)
def test_once_reverted_neither_the_operation_nor_its_preview_offers_revert(agent_client):
    original, *_ = partly_done(agent_client)
    form = revert_form(agent_client, original)
    preview = BulkOperation.objects.get(reverts=original, dry_run=True)
    agent_client.post(f"/bulk-operations/{original.pk}/revert/", form)
    work_off()
    assert "/revert/" not in agent_client.get(f"/bulk-operations/{original.pk}/").content.decode()
    assert "Start revert" not in agent_client.get(f"/bulk-operations/{preview.pk}/").content.decode()


def test_a_preview_that_would_restore_nothing_offers_no_start(client, me):
    original = finished(me, ["succeeded"], status="completed")
    preview = finished(me, ["failed"], status="failed", reverts=original, dry_run=True, operation_type="revert")
    content = client.get(f"/bulk-operations/{preview.pk}/").content.decode()
    assert "0 tickets would be restored; 1 would not" in content
    assert "Start revert" not in content
    assert f'<a href="/bulk-operations/{original.pk}/">Back to the operation</a>' in content


def test_a_failed_revert_leaves_the_revert_button(client, me):
    op = finished(me, ["succeeded"], status="completed")
    BulkOperationFactory(user=me, reverts=op, status="failed")
    assert "Preview revert…" in client.get(f"/bulk-operations/{op.pk}/").content.decode()


def test_the_retry_choice_ticks_only_the_failures_a_retry_can_change(client, me):
    op = finished(me, ["failed", "failed", "failed"])
    op.items.filter(position=1).update(error_code="PERMISSION_DENIED")
    op.items.filter(position=2).update(error_code="LOCK_TIMEOUT")
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    boxes = dict(re.findall(r'<input type="checkbox" name="codes" value="(\w+)"([^>]*)>', content))
    assert list(boxes) == ["LOCK_TIMEOUT", "NOT_FOUND", "PERMISSION_DENIED"]
    assert ["checked" in attrs for attrs in boxes.values()] == [True, True, False]
    assert "PERMISSION_DENIED (1 item)" in content


@pytest.mark.django_db(transaction=True)
def test_retry_takes_the_failures_ticked(agent_client):
    original, tickets, closed = partly_done(agent_client)
    form = hidden_inputs(agent_client.get(f"/bulk-operations/{original.pk}/"), "Retry failed items</button>")
    refused = agent_client.post(f"/bulk-operations/{original.pk}/retry/", form, follow=True)  # nothing ticked
    assert '<li class="error">Choose which failures to retry.</li>' in refused.content.decode()
    assert not BulkOperation.objects.filter(retry_of=original).exists()
    bogus = agent_client.post(f"/bulk-operations/{original.pk}/retry/", {**form, "codes": ["NOPE"]}, follow=True)
    assert "Select a valid choice. NOPE is not one of the available choices." in bogus.content.decode()
    assert not BulkOperation.objects.filter(retry_of=original).exists()
    agent_client.post(f"/bulk-operations/{original.pk}/retry/", {**form, "codes": ["INVALID_TRANSITION"]})
    assert list(BulkOperation.objects.get(retry_of=original).items.values_list("target_id", flat=True)) == [
        str(closed.pk)
    ]


def test_the_progress_page_names_what_the_form_showed_and_counts_in_words(client, me):
    assignee = UserFactory(username="dana")
    op = finished(me, ["succeeded"], status="completed", operation_type="update_fields",
                  operation_data={"status": "in_progress", "assignee_id": assignee.pk})  # fmt: skip
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "<dt>Status</dt><dd>In Progress</dd>" in content
    assert "<dt>Assignee</dt><dd>dana</dd>" in content
    assert "1 ticket ·" in content and "1 tickets" not in content
    assert re.search(r"created <time [^>]+>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time>", content)
    history = client.get("/bulk-operations/").content.decode()
    assert "Status: In Progress, Assignee: dana" in history
    assert "<td>1 ticket</td>" in history


def test_each_button_has_a_token_of_its_own(client, me):
    op = finished(me, ["succeeded", "failed"], status="partial")
    page = client.get(f"/bulk-operations/{op.pk}/")
    pending = BulkOperationFactory(user=me, items=["pending"])
    forms = [hidden_inputs(page, "revert/"), hidden_inputs(page, "retry/")]
    forms.append(hidden_inputs(client.get(f"/bulk-operations/{pending.pk}/"), "cancel/"))
    tokens = {token for form in forms for token in form["token"]}
    assert len(tokens) == 3


def test_pressing_cancel_twice_lands_on_the_page_both_times(client, me):
    op = BulkOperationFactory(user=me, items=["pending"] * 3)
    form = hidden_inputs(client.get(f"/bulk-operations/{op.pk}/"), "cancel/")
    first = client.post(f"/bulk-operations/{op.pk}/cancel/", form, follow=True)
    again = client.post(f"/bulk-operations/{op.pk}/cancel/", form, follow=True)
    assert first.redirect_chain == again.redirect_chain == [(f"/bulk-operations/{op.pk}/", 302)]
    assert "Cancelled." in first.content.decode()
    assert "Nothing to cancel" not in again.content.decode()
    op.refresh_from_db()
    assert (op.status, op.skipped_items) == ("cancelled", 3)


# --- logging in and out --------------------------------------------------------------------------


def test_a_person_logs_in_on_the_login_page_and_lands_on_the_tickets(client):
    UserFactory(username="ann")
    page = client.get("/login/").content.decode()
    assert '<label for="id_username">' in page and '<label for="id_password">' in page
    response = client.post("/login/", {"username": "ann", "password": "pw"})
    assert response["Location"] == "/tickets/"


def test_a_wrong_password_is_refused_on_the_page(client):
    UserFactory(username="ann")
    response = client.post("/login/", {"username": "ann", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_logging_out_is_a_post_and_ends_the_session(client, me):
    response = client.post("/logout/")
    assert response["Location"] == "/login/"
    assert client.get("/tickets/").status_code == 302


def test_the_operation_page_tells_unchanged_items_from_changed_ones(client, me):
    op = finished(me, ["succeeded", "succeeded", "succeeded"], status="completed", unchanged_items=2)
    content = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert '<dd data-field="successful_items">3</dd>' in content
    assert '<dd data-field="unchanged_items">2</dd>' in content
    assert "3 (2 unchanged)" in client.get("/bulk-operations/").content.decode()


# --- awaiting approval (SPEC §13) -------------------------------------------------------------


@pytest.fixture
def approver(client):
    user = ApproverFactory()
    client.force_login(user)
    return user


def awaiting(user=None, **fields):
    return BulkOperationFactory(user=user or UserFactory(), items=["pending"] * 2, status="awaiting_approval", **fields)


def test_the_awaiting_approval_page_lists_every_users_operations_with_buttons(client, approver):
    theirs = awaiting(metadata={"description": "Spam cleanup"})
    mine = awaiting(approver)
    BulkOperationFactory(items=["pending"])  # pending: not awaiting
    response = client.get("/bulk-operations/awaiting-approval/")
    content = response.content.decode()
    assert listed(response) == [str(theirs.pk), str(mine.pk)]  # oldest first
    assert "2 operations awaiting approval" in content
    assert "Reason: Spam cleanup" in content
    assert content.count(">Approve</button>") == 1  # not on the approver's own
    assert "yours: another person decides" in content
    assert 'href="/bulk-operations/awaiting-approval/">Awaiting approval</a>' in content


def test_the_awaiting_approval_page_is_for_approvers_only(client, me):
    awaiting()
    assert client.get("/bulk-operations/awaiting-approval/").status_code == 403
    assert "Awaiting approval</a>" not in client.get("/bulk-operations/").content.decode()


def test_approve_from_the_page_enqueues_it_once_and_says_so(client, approver):
    op = awaiting()
    form = hidden_inputs(client.get("/bulk-operations/awaiting-approval/"), "approve/")
    response = client.post(f"/bulk-operations/{op.pk}/approve/", form, follow=True)
    assert "Approved: it starts now." in response.content.decode()
    again = client.post(f"/bulk-operations/{op.pk}/approve/", form, follow=True)
    assert "Approved: it starts now." not in again.content.decode()  # the second submit did nothing
    assert "not awaiting" not in again.content.decode()
    op.refresh_from_db()
    assert (op.status, op.approved_by) == ("pending", approver)
    assert f"Approved by</dt><dd>{approver}," in client.get(f"/bulk-operations/{op.pk}/").content.decode()


def test_reject_from_the_operation_page_needs_a_reason(client, approver):
    op = awaiting()
    page = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "Waits for another person's approval — yours." in page
    assert "Cancel operation" not in page  # not the approver's to cancel
    form = hidden_inputs(client.get(f"/bulk-operations/{op.pk}/"), "reject/")
    refused = client.post(f"/bulk-operations/{op.pk}/reject/", form, follow=True)
    assert "Not rejected: this field is required. Say why: the creator sees it." in refused.content.decode()
    done = client.post(f"/bulk-operations/{op.pk}/reject/", {**form, "reason": "Wrong tickets"}, follow=True)
    assert "Rejected." in done.content.decode()
    op.refresh_from_db()
    assert (op.status, op.rejection_reason, op.skipped_items) == ("cancelled", "Wrong tickets", 2)
    assert "Rejected</dt><dd>Wrong tickets</dd>" in done.content.decode()


def test_the_creator_sees_it_waits_and_gets_no_buttons_but_cancel(client, me):
    op = awaiting(me)
    page = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "Waits for another person's approval." in page
    assert ">Approve</button>" not in page
    assert "Cancel operation" in page
    assert client.post(f"/bulk-operations/{op.pk}/approve/", follow=True).status_code == 200
    op.refresh_from_db()
    assert op.status == "awaiting_approval"


def test_a_scheduled_operation_shows_when_it_starts(client, me):
    op = BulkOperationFactory(user=me, items=["pending"], status="scheduled", run_at=timezone.now())
    assert "<dt>Starts</dt>" in client.get(f"/bulk-operations/{op.pk}/").content.decode()
