"""The BulkOperation admin: filters, a read-only detail with paginated items, cancel, pause and resume actions."""

import re

import pytest
from django.test import Client

from bulkops.models import BulkOperation

from ..factories import BulkOperationFactory, TicketFactory, UserFactory
from .helpers import hidden_inputs

CHANGELIST = "/admin/bulkops/bulkoperation/"
TICKETS = "/admin/tickets/ticket/"

pytestmark = pytest.mark.django_db


def test_the_changelist_lists_operations_with_filters(admin_client):
    BulkOperationFactory(status="completed")
    BulkOperationFactory(status="pending")
    content = admin_client.get(CHANGELIST).content.decode()
    assert "2 bulk operations" in content
    assert "?status__exact=completed" in content
    assert "?resource_type=tickets" in content
    assert "1 bulk operation" in admin_client.get(f"{CHANGELIST}?status__exact=completed").content.decode()


def test_the_detail_is_read_only_and_links_to_the_progress_page(admin_client):
    op = BulkOperationFactory(items=["succeeded", "failed"])
    content = admin_client.get(f"{CHANGELIST}{op.pk}/change/").content.decode()
    assert f'href="/bulk-operations/{op.pk}/"' in content
    assert f'href="/api/v1/bulk-operations/{op.pk}/items.csv"' in content
    assert 'name="status"' not in content
    assert 'type="submit" value="Save"' not in content
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403


def targets(content):
    return [int(t) for t in re.findall(r'field-target_id">\s*<p>(\d+)</p>', content)]


def test_the_items_inline_shows_one_page_of_100_items(admin_client):
    op = BulkOperationFactory(items=["succeeded"] * 250)
    first = admin_client.get(f"{CHANGELIST}{op.pk}/change/").content.decode()
    assert "Items 1–100 of 250." in first
    assert targets(first) == list(range(1000, 1100))
    assert "?items_page=2" in first
    last = admin_client.get(f"{CHANGELIST}{op.pk}/change/?items_page=3").content.decode()
    assert "Items 201–250 of 250." in last
    assert targets(last) == list(range(1200, 1250))


def test_a_nonsense_items_page_shows_the_first(admin_client):
    op = BulkOperationFactory(items=["succeeded"] * 3)
    assert "Items 1–3 of 3." in admin_client.get(f"{CHANGELIST}{op.pk}/change/?items_page=x").content.decode()


def test_the_cancel_action_cancels_the_active_ones_and_reports_the_rest(admin_client):
    pending = BulkOperationFactory(items=["pending"] * 2)
    done = BulkOperationFactory(status="completed", items=["succeeded"])
    response = admin_client.post(
        CHANGELIST, {"action": "cancel_operations", "index": 0, "_selected_action": [pending.pk, done.pk]}, follow=True
    )
    content = response.content.decode()
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    assert "Cancelled 1 operation." in content
    assert "1 had already finished." in content


def test_the_detail_page_cancels_its_operation(admin_client):
    op = BulkOperationFactory(items=["pending"])
    url = f"{CHANGELIST}{op.pk}/change/"
    assert '<option value="cancel_operations">Cancel this operation</option>' in admin_client.get(url).content.decode()
    response = admin_client.post(
        url, {"CHANGE_FORM-action": "cancel_operations", "index": 0, "_selected_action": op.pk}
    )
    assert response["Location"] == url
    op.refresh_from_db()
    assert op.status == "cancelled"


def test_the_pause_and_resume_actions_pause_and_resume_and_report_the_rest(admin_client):
    running = BulkOperationFactory(status="in_progress", items=["succeeded", "pending"])
    done = BulkOperationFactory(status="completed", items=["succeeded"])
    selected = {"index": 0, "_selected_action": [running.pk, done.pk]}
    content = admin_client.post(CHANGELIST, {"action": "pause_operations", **selected}, follow=True).content.decode()
    running.refresh_from_db()
    assert running.status == "paused"
    assert "Paused 1 operation." in content and "1 could not be paused." in content
    content = admin_client.post(CHANGELIST, {"action": "resume_operations", **selected}, follow=True).content.decode()
    running.refresh_from_db()
    assert running.status == "in_progress"
    assert "Resumed 1 operation." in content and "1 could not be resumed." in content


def test_the_admin_is_for_staff_only():
    client = Client()
    client.force_login(UserFactory())
    assert client.get(CHANGELIST)["Location"].startswith("/admin/login/")


# --- the bulk actions' intermediate form (bulk_action) ----------------------------------------


def intermediate_form(client, action, ids, select_across=0):
    body = {"action": action, "index": 0, "_selected_action": ids, "select_across": select_across}
    return client.post(TICKETS, body)


def test_starting_twice_from_one_intermediate_form_starts_one_operation(admin_client):
    tickets = TicketFactory.create_batch(2)
    form = hidden_inputs(intermediate_form(admin_client, "bulk_add_comment", [t.pk for t in tickets]), 'name="apply"')
    submit = {**form, "data-body": "Seen", "apply": "Start on 2"}
    first, again = admin_client.post(TICKETS, submit), admin_client.post(TICKETS, submit)
    op = BulkOperation.objects.get()
    assert first["Location"] == again["Location"] == f"/bulk-operations/{op.pk}/"
    assert op.total_items == 2


def test_select_all_counts_and_starts_on_what_the_action_can_change(admin_client):
    live = TicketFactory.create_batch(2)
    TicketFactory(is_deleted=True)
    response = intermediate_form(admin_client, "bulk_delete", [live[0].pk], select_across=1)
    assert '<strong id="bulk-count">2 tickets</strong>' in response.content.decode()
    admin_client.post(TICKETS, {**hidden_inputs(response, 'name="apply"'), "apply": "Start on 2"})
    assert list(BulkOperation.objects.get().items.values_list("target_id", flat=True)) == [str(t.pk) for t in live]


# --- approve and reject (SPEC §13) -----------------------------------------------------------


def test_the_approve_action_approves_others_operations_and_reports_the_rest(admin_client, staff):
    theirs = BulkOperationFactory(items=["pending"], status="awaiting_approval")
    own = BulkOperationFactory(user=staff, items=["pending"], status="awaiting_approval")
    running = BulkOperationFactory(items=["pending"], status="in_progress")
    body = {"action": "approve_operations", "index": 0, "_selected_action": [theirs.pk, own.pk, running.pk]}
    content = admin_client.post(CHANGELIST, body, follow=True).content.decode()
    assert "Approved 1 operation." in content
    assert "1 did not await approval." in content
    assert "Another person must approve your operation" in content
    theirs.refresh_from_db()
    assert (theirs.status, theirs.approved_by) == ("pending", staff)
    assert BulkOperation.objects.get(pk=own.pk).status == "awaiting_approval"


def test_the_reject_action_asks_why_then_rejects(admin_client):
    op = BulkOperationFactory(items=["pending"] * 2, status="awaiting_approval")
    body = {"action": "reject_operations", "index": 0, "_selected_action": [op.pk]}
    form = admin_client.post(CHANGELIST, body)
    assert 'name="reason"' in form.content.decode()
    done = admin_client.post(CHANGELIST, {**body, "apply": "Reject", "reason": "Not now"}, follow=True)
    assert "Rejected 1 operation." in done.content.decode()
    op.refresh_from_db()
    assert (op.status, op.rejection_reason, op.skipped_items) == ("cancelled", "Not now", 2)


def test_the_review_actions_need_the_permission():
    client = Client()
    client.force_login(UserFactory(is_staff=True, perms=["bulkops.view_bulkoperation"]))
    content = client.get(CHANGELIST).content.decode()
    assert "approve_operations" not in content and "reject_operations" not in content
