import html
import re

import pytest
from django.test import Client

from bulkops.api.serializers import public_names
from bulkops.models import BulkOperation
from tickets.models import Ticket

from ..bulkops.helpers import double_click, hidden_inputs, work_off
from ..factories import AgentFactory, CategoryFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent_client(agent, client):
    client.force_login(agent)
    return client


def rows(response):
    """The ticket ids the list shows, in order."""
    return [int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', response.content.decode())]


def bulk(client, operation="update_status", step=None, **fields):
    data = {"operation": operation, "query": "", **fields}
    if step:
        data["step"] = step
    return client.post("/tickets/bulk/", data)


# --- the list -------------------------------------------------------------------------


def test_the_list_asks_for_a_login(client):
    response = client.get("/tickets/?status=open")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/tickets/%3Fstatus%3Dopen"


def test_the_home_page_leads_to_the_list(agent_client):
    assert agent_client.get("/")["Location"] == "/tickets/"


def test_a_requester_sees_only_their_own_tickets(client):
    me = UserFactory()
    mine = TicketFactory(requester=me)
    TicketFactory()
    client.force_login(me)
    assert rows(client.get("/tickets/")) == [mine.pk]


def test_the_list_filters_like_the_api(agent_client):
    printer = TicketFactory(title="Printer on fire", status="open", priority="high")
    TicketFactory(title="Printer jammed", status="closed", priority="high")
    TicketFactory(title="Mouse", status="open", priority="high")
    response = agent_client.get("/tickets/?status=open&priority=high&search=printer")
    assert rows(response) == [printer.pk]
    assert "1 ticket</caption>" in response.content.decode()


def test_staff_may_list_only_the_deleted_tickets(client, staff):
    TicketFactory()
    deleted = TicketFactory(is_deleted=True)
    client.force_login(staff)
    response = client.get("/tickets/?is_deleted=true")
    assert rows(response) == [deleted.pk]
    assert '<span class="badge">deleted</span>' in response.content.decode()


def test_people_filter_by_name_and_only_staff_by_deletion(agent_client):
    UserFactory(username="zoe")
    content = agent_client.get("/tickets/").content.decode()
    assert "zoe</option>" in content
    assert 'name="is_deleted"' not in content


def test_an_invalid_filter_shows_its_error_and_no_tickets(agent_client):
    TicketFactory()
    response = agent_client.get("/tickets/?status=nonsense")
    assert response.status_code == 200
    assert rows(response) == []
    assert "Select a valid choice" in response.content.decode()


def test_the_filter_forms_unfilled_fields_mean_not_filtered(client, staff):
    tickets = TicketFactory.create_batch(2)
    client.force_login(staff)
    response = client.get("/tickets/?status=&priority=&category=&assignee=&search=&created_after=&is_deleted=")
    assert rows(response) == [t.pk for t in reversed(tickets)]


def test_a_filter_value_the_list_cannot_use_shows_its_error_and_no_tickets(client, staff):
    TicketFactory()
    client.force_login(staff)
    response = client.get("/tickets/?is_deleted=maybe")
    assert rows(response) == []
    assert "“maybe” is not a value this filter can use." in response.content.decode()


def test_the_list_is_paginated_and_keeps_the_filter_across_pages(agent_client):
    tickets = TicketFactory.create_batch(55, status="pending")
    first = agent_client.get("/tickets/?status=pending")
    second = agent_client.get("/tickets/?status=pending&page=2")
    assert rows(first) == [t.pk for t in reversed(tickets)][:50]
    assert rows(second) == [t.pk for t in reversed(tickets)][50:]
    assert 'href="?status=pending&amp;page=2"' in first.content.decode()


def test_select_all_offers_every_matching_ticket_not_only_the_page(agent_client):
    TicketFactory.create_batch(55)
    content = agent_client.get("/tickets/").content.decode()
    assert "Select all 55 tickets matching the filter" in content
    assert 'name="select_across"' in content


def offered(client):
    content = client.get("/tickets/").content.decode()
    return re.findall(r'<option value="(\w+)">', content.split('id="operation"')[1].split("</select>")[0])


def test_the_action_menu_offers_every_ticket_operation_a_person_may_start(client):
    client.force_login(AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"]))
    assert sorted(offered(client)) == sorted(public_names("tickets"))
    assert {"update_status", "assign", "add_comment", "delete"} <= set(offered(client))
    assert "revert" not in offered(client)  # started from an operation's page, not from a selection


def test_an_agent_without_the_delete_permission_is_offered_neither_delete_nor_restore(agent_client):
    assert sorted(offered(agent_client)) == sorted(set(public_names("tickets")) - {"delete", "restore"})


def test_a_requester_is_offered_only_what_a_requester_may_do(client):
    """Every other action would fail PERMISSION_DENIED on every item."""
    client.force_login(UserFactory())
    assert offered(client) == ["add_comment"]


def test_a_requester_cannot_post_an_action_they_are_not_offered(client):
    requester = UserFactory()
    ticket = TicketFactory(requester=requester)
    client.force_login(requester)
    response = bulk(client, "delete", step="start", ids=[ticket.pk])
    assert response.status_code == 302
    assert "Select a valid choice" in html.unescape(client.get(response["Location"]).content.decode())
    assert not BulkOperation.objects.exists()
    assert Ticket.objects.get(pk=ticket.pk).is_deleted is False


# --- the bulk action: form, confirmation, start ------------------------------------------


def test_the_first_step_shows_the_actions_form_and_the_count(agent_client):
    tickets = TicketFactory.create_batch(3)
    response = bulk(agent_client, ids=[t.pk for t in tickets])
    content = response.content.decode()
    assert response.status_code == 200
    assert "3 tickets selected" in content
    assert 'name="data-status"' in content
    assert 'value="resolved"' in content


def test_the_assign_form_offers_people_and_nobody(agent_client):
    ticket = TicketFactory()
    bob = UserFactory(username="bob")
    content = bulk(agent_client, "assign", ids=[ticket.pk]).content.decode()
    assert f'<option value="{bob.pk}">bob</option>' in content
    assert "— none —" in content


def test_nothing_selected_goes_back_to_the_list_with_a_message(agent_client):
    response = bulk(agent_client, ids=[], query="status=open")
    assert response.status_code == 302
    assert response["Location"] == "/tickets/?status=open"
    page = agent_client.get(response["Location"]).content.decode()
    assert "Select at least one ticket, or all tickets matching the filter." in page


def test_an_unknown_or_internal_operation_is_refused(agent_client):
    ticket = TicketFactory()
    for name in ("explode", "revert"):
        response = bulk(agent_client, name, ids=[ticket.pk])
        assert response.status_code == 302
    assert not BulkOperation.objects.exists()


def test_a_malformed_ticket_id_is_refused_without_an_error_page(agent_client):
    for bad in ("abc", "99999999999999999999999"):
        assert bulk(agent_client, ids=[bad]).status_code == 302


def test_tickets_the_user_cannot_see_are_not_counted(client):
    me = UserFactory()
    mine = TicketFactory(requester=me)
    other = TicketFactory()
    client.force_login(me)
    response = bulk(client, "add_comment", ids=[mine.pk, other.pk])
    assert "1 ticket selected" in response.content.decode()


def test_the_confirmation_says_how_many_tickets_will_change_and_how(agent_client):
    tickets = TicketFactory.create_batch(4)
    response = bulk(
        agent_client,
        step="confirm",
        ids=[t.pk for t in tickets],
        **{"data-status": "resolved", "data-description": "Fixed"},
    )
    content = response.content.decode()
    assert '<strong id="confirm-count">4 tickets</strong> will change.' in content
    assert "<dt>Status</dt><dd>Resolved</dd>" in content
    assert "<dt>Reason</dt><dd>Fixed</dd>" in content
    assert not BulkOperation.objects.exists()


def test_an_invalid_form_is_shown_again_with_its_error(agent_client):
    ticket = TicketFactory()
    response = bulk(agent_client, step="confirm", ids=[ticket.pk], **{"data-status": "sleeping"})
    content = response.content.decode()
    assert "Select a valid choice" in content
    assert "Review…" in content


def test_only_offered_people_and_categories_can_be_chosen(agent_client):
    ticket = TicketFactory()
    response = bulk(agent_client, "assign", step="confirm", ids=[ticket.pk], **{"data-assignee_id": "999999"})
    assert "Select a valid choice" in response.content.decode()
    category = CategoryFactory()
    response = bulk(agent_client, "set_category", step="confirm", ids=[ticket.pk], **{"data-category_id": category.pk})
    assert "<dt>Category</dt><dd>" + category.name in response.content.decode()


def preview_rows(response):
    """The confirmation's preview table, row by row, as text."""
    table = response.content.decode().split('id="change-preview"')[1].split("</table>")[0]
    body = table.split("<tbody>")[1]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


def test_the_confirmation_shows_each_of_the_first_tickets_now_and_after_with_names(agent_client):
    printers = CategoryFactory(name="Printers")
    dana = UserFactory(username="dana")
    first = TicketFactory(title="Jam", status="open", category=printers)
    second = TicketFactory(title="Toner", status="pending", assignee=dana)
    response = bulk(agent_client, "update_fields", step="confirm", ids=[second.pk, first.pk],
                    **{"data-status": "resolved", "data-assignee_id": dana.pk})  # fmt: skip
    content = response.content.decode()
    assert '<th scope="col">Status</th><th scope="col">Assignee</th>' in content
    assert preview_rows(response) == [
        [str(first.pk), "Jam", "Open → Resolved", "none → dana"],
        [str(second.pk), "Toner", "Pending → Resolved", "dana (no change)"],
    ]
    assert "danger" not in content


def test_the_confirmation_lists_the_first_ten_tickets_and_says_how_many_more(agent_client):
    tickets = TicketFactory.create_batch(12)
    response = bulk(agent_client, "set_priority", step="confirm", ids=[t.pk for t in tickets],
                    **{"data-priority": "high"})  # fmt: skip
    rows = preview_rows(response)
    assert [row[0] for row in rows] == [str(t.pk) for t in tickets[:10]]
    assert rows[0][2] == "Normal → High"
    assert "The first 10 of 12 tickets" in response.content.decode()
    assert "…and 2 more." in response.content.decode()


def test_the_delete_confirmation_warns_and_lists_the_tickets(client):
    client.force_login(AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"]))
    tickets = TicketFactory.create_batch(2)
    response = bulk(client, "delete", step="confirm", ids=[t.pk for t in tickets])
    content = response.content.decode()
    assert '<div class="danger-zone" role="alert">' in content
    assert '<strong id="confirm-count">2 tickets</strong> will be deleted.' in content
    assert preview_rows(response) == [[str(t.pk), t.title] for t in tickets]
    assert 'class="danger-primary">Delete 2 tickets</button>' in content
    assert not Ticket.objects.filter(is_deleted=True).exists()


def test_a_single_ticket_is_counted_in_the_singular(agent_client):
    ticket = TicketFactory()
    response = bulk(agent_client, step="confirm", ids=[ticket.pk], **{"data-status": "resolved"})
    content = response.content.decode()
    assert '<strong id="confirm-count">1 ticket</strong> will change.' in content
    assert "Start on 1 ticket</button>" in content


def test_going_back_from_the_confirmation_keeps_the_values(agent_client):
    ticket = TicketFactory()
    response = bulk(agent_client, step="edit", ids=[ticket.pk], **{"data-status": "pending"})
    assert '<option value="pending" selected>' in response.content.decode()


def test_starting_creates_an_async_operation_and_opens_its_progress_page(agent_client, agent):
    tickets = TicketFactory.create_batch(3)
    response = bulk(
        agent_client, step="start", ids=[t.pk for t in tickets], **{"data-status": "closed", "data-description": "Tidy"}
    )
    op = BulkOperation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/bulk-operations/{op.pk}/"
    assert (op.user, op.resource_type, op.operation_type, op.execution) == (agent, "tickets", "update_status", "async")
    assert op.operation_data == {"status": "closed"}
    assert op.metadata == {"description": "Tidy"}
    assert sorted(op.items.values_list("target_id", flat=True)) == sorted(str(t.pk) for t in tickets)


def test_optional_fields_left_empty_are_left_unchanged(agent_client):
    ticket = TicketFactory()
    bulk(agent_client, "update_fields", step="start", ids=[ticket.pk], **{"data-priority": "urgent", "data-status": ""})
    assert BulkOperation.objects.get().operation_data == {"priority": "urgent"}


def test_an_empty_assignee_unassigns(agent_client):
    ticket = TicketFactory()
    bulk(agent_client, "assign", step="start", ids=[ticket.pk], **{"data-assignee_id": ""})
    assert BulkOperation.objects.get().operation_data == {"assignee_id": None}


def test_select_all_takes_every_ticket_the_filter_matches_not_the_page(agent_client):
    matching = TicketFactory.create_batch(60, priority="high")
    TicketFactory.create_batch(5, priority="low")
    form = bulk(agent_client, "set_priority", select_across="1", query="priority=high")
    assert "60 tickets selected: every ticket matching the filter" in form.content.decode()
    bulk(
        agent_client, "set_priority", step="start", select_across="1", query="priority=high", **{"data-priority": "low"}
    )
    op = BulkOperation.objects.get()
    assert op.total_items == 60
    assert list(op.items.order_by("position").values_list("target_id", flat=True)) == [str(t.pk) for t in matching]


def test_too_many_active_operations_is_said_on_the_confirmation(agent_client, settings):
    settings.BULKOPS_MAX_ACTIVE_PER_USER = 0
    ticket = TicketFactory()
    response = bulk(agent_client, step="start", ids=[ticket.pk], **{"data-status": "closed"})
    assert response.status_code == 200
    assert "Too many pending or running operations" in response.content.decode()
    assert not BulkOperation.objects.exists()


def test_the_bulk_steps_need_a_login_a_post_and_a_csrf_token(client, agent):
    ticket = TicketFactory()
    assert client.post("/tickets/bulk/", {"operation": "delete", "ids": [ticket.pk]}).status_code == 302
    client.force_login(agent)
    assert client.get("/tickets/bulk/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)
    data = {"operation": "delete", "ids": [ticket.pk], "step": "start"}
    assert strict.post("/tickets/bulk/", data).status_code == 403
    assert not BulkOperation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_started_action_changes_the_tickets_on_a_worker():
    agent = AgentFactory()
    client = Client()
    client.force_login(agent)
    tickets = TicketFactory.create_batch(3, status="open")
    closed = TicketFactory(status="closed")
    ids = [t.pk for t in [*tickets, closed]]
    bulk(client, step="start", ids=ids, **{"data-status": "resolved"})
    work_off()
    op = BulkOperation.objects.get()
    assert (op.status, op.successful_items, op.failed_items) == ("partial", 3, 1)
    assert set(Ticket.objects.filter(pk__in=[t.pk for t in tickets]).values_list("status", flat=True)) == {"resolved"}
    page = client.get(f"/bulk-operations/{op.pk}/").content.decode()
    assert "INVALID_TRANSITION" in page


# --- select all with a filter it cannot use; what a confirmation counts --------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("is_deleted=maybe", "is_deleted: “maybe” is not a value this filter can use."),
        ("created_after=yesterday", "created_after: Enter a valid date/time."),
        ("assignee=abc", "assignee: Enter a whole number."),
    ],
)
def test_select_all_with_a_filter_it_cannot_use_starts_nothing_and_says_which(agent_client, query, message):
    TicketFactory.create_batch(3)
    data = {"select_across": "1", "query": query, "data-body": "Twice?"}
    response = bulk(agent_client, "add_comment", step="start", **data)
    assert response.status_code == 302
    assert response["Location"] == f"/tickets/?{query}"
    page = html.unescape(agent_client.get(response["Location"]).content.decode())
    assert f"The list's filter cannot be used: {message}" in page
    assert not BulkOperation.objects.exists()


def test_select_all_ignores_the_filter_forms_unfilled_fields(agent_client):
    high = TicketFactory.create_batch(2, priority="high")
    TicketFactory(priority="low")
    query = "status=&priority=high&assignee=&search="
    bulk(agent_client, "set_priority", step="start", select_across="1", query=query, **{"data-priority": "low"})
    assert sorted(BulkOperation.objects.get().items.values_list("target_id", flat=True)) == sorted(
        str(t.pk) for t in high
    )


def test_restore_counts_and_starts_on_the_deleted_tickets_only(client, staff):
    deleted = TicketFactory.create_batch(3, is_deleted=True)
    TicketFactory.create_batch(4)
    client.force_login(staff)
    confirm = bulk(client, "restore", step="confirm", select_across="1")
    assert '<strong id="confirm-count">3 tickets</strong> will change.' in confirm.content.decode()
    bulk(client, "restore", step="start", select_across="1")
    op = BulkOperation.objects.get()
    assert op.total_items == 3
    assert list(op.items.values_list("target_id", flat=True)) == [str(t.pk) for t in deleted]


def test_restoring_live_tickets_starts_nothing_and_says_why(client):
    agent_client = client
    agent_client.force_login(AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"]))
    ticket = TicketFactory()
    response = bulk(agent_client, "restore", step="start", ids=[ticket.pk])
    assert response.status_code == 302
    page = html.unescape(agent_client.get(response["Location"]).content.decode())
    assert "No ticket you can see in this selection can take this action." in page
    assert not BulkOperation.objects.exists()


def test_every_other_action_counts_and_starts_on_the_live_tickets_only(client, staff):
    deleted, live = TicketFactory(is_deleted=True), TicketFactory()
    client.force_login(staff)
    form = bulk(client, "delete", ids=[deleted.pk, live.pk])
    assert "1 ticket selected" in form.content.decode()
    bulk(client, "delete", step="start", ids=[deleted.pk, live.pk])
    assert list(BulkOperation.objects.get().items.values_list("target_id", flat=True)) == [str(live.pk)]


# --- a page form submitted again starts nothing (SPEC §11) -----------------------------------

BULK_FORM = 'action="/tickets/bulk/"'


def confirmation(client, operation, ids, **data):
    """The action's form (where its one-time token is made), filled in and reviewed."""
    form = bulk(client, operation, ids=ids)
    return client.post("/tickets/bulk/", {**hidden_inputs(form, BULK_FORM), **data, "step": "confirm"})


def comment_start(client, tickets):
    """The confirmation of "Add comment" on `tickets`, as its Start button posts it."""
    confirm = confirmation(client, "add_comment", [t.pk for t in tickets], **{"data-body": "On it"})
    return {**hidden_inputs(confirm, BULK_FORM), "step": "start"}


@pytest.fixture
def agent_browser(agent):
    """A browser of the agent's, for tests whose requests commit (workers, threads)."""
    client = Client()
    client.force_login(agent)
    return client


@pytest.mark.django_db(transaction=True)
def test_starting_twice_from_one_confirmation_adds_each_comment_once(agent_browser):
    tickets = TicketFactory.create_batch(3)
    start = comment_start(agent_browser, tickets)
    first = agent_browser.post("/tickets/bulk/", start)
    again = agent_browser.post("/tickets/bulk/", start)  # Back and Start again, a reload
    op = BulkOperation.objects.get()
    assert first["Location"] == again["Location"] == f"/bulk-operations/{op.pk}/"
    page = agent_browser.get(again["Location"]).content.decode()
    assert "This form was submitted before: this is the operation it started; nothing new was started." in page
    work_off()
    assert [t.comments.count() for t in tickets] == [1, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_start_starts_one_operation_and_both_clicks_land_on_it(agent, agent_browser):
    start = comment_start(agent_browser, TicketFactory.create_batch(3))
    locations = double_click(agent, "/tickets/bulk/", start)
    assert locations == [f"/bulk-operations/{BulkOperation.objects.get().pk}/"] * 2


def test_going_back_to_change_the_values_of_a_started_form_starts_nothing_new(agent_client):
    ticket = TicketFactory()
    confirm = confirmation(agent_client, "add_comment", [ticket.pk], **{"data-body": "First"})
    first = agent_client.post("/tickets/bulk/", {**hidden_inputs(confirm, BULK_FORM), "step": "start"})
    edited = {**hidden_inputs(confirm, BULK_FORM), "data-body": "Second"}
    reviewed = agent_client.post("/tickets/bulk/", {**edited, "step": "confirm"})
    again = agent_client.post("/tickets/bulk/", {**hidden_inputs(reviewed, BULK_FORM), "step": "start"})
    op = BulkOperation.objects.get()
    assert first["Location"] == again["Location"] == f"/bulk-operations/{op.pk}/"
    assert op.operation_data == {"body": "First"}


def test_each_rendering_of_the_actions_form_has_a_token_of_its_own(agent_client):
    ticket = TicketFactory()
    tokens = [hidden_inputs(bulk(agent_client, "add_comment", ids=[ticket.pk]), BULK_FORM)["data-token"] for _ in "ab"]
    assert tokens[0] != tokens[1]
    assert all(re.fullmatch(r"[\w-]{32}", token) for [token] in tokens)


def test_a_token_that_is_not_one_of_ours_is_replaced_not_used(agent_client):
    ticket = TicketFactory()
    for token in ("x", "a\x00b" * 10, "é" * 40):
        response = bulk(
            agent_client, "add_comment", step="start", ids=[ticket.pk], **{"data-body": "Hi", "data-token": token}
        )
        assert response.status_code == 302
    keys = set(BulkOperation.objects.values_list("idempotency_key", flat=True))
    assert len(keys) == 3
    assert all(re.fullmatch(r"page:[\w-]{32}", key) for key in keys)
