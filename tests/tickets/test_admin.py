"""The bulk actions on the Ticket changelist: an intermediate form, then an async operation."""

import pytest
from django.test import Client

from bulkops.models import BulkOperation
from tickets.models import Category, Ticket, TicketEvent

from ..bulkops.helpers import work_off
from ..factories import AgentFactory, CategoryFactory, StaffFactory, TicketFactory

CHANGELIST = "/admin/tickets/ticket/"
ACTIONS = {
    "bulk_update_status": ("Change status…", "update_status", {"data-status": "closed"}, {"status": "closed"}),
    "bulk_assign": ("Assign…", "assign", {"data-assignee_id": ""}, {"assignee_id": None}),
    "bulk_set_priority": ("Set priority…", "set_priority", {"data-priority": "low"}, {"priority": "low"}),
    "bulk_set_category": ("Set category…", "set_category", {"data-category_id": ""}, {"category_id": None}),
    "bulk_add_comment": ("Add comment…", "add_comment", {"data-body": "Looking into it"}, {"body": "Looking into it"}),
    "bulk_delete": ("Delete…", "delete", {}, {}),
}

pytestmark = pytest.mark.django_db


def act(client, action, ids, url=CHANGELIST, select_across=False, **data):
    body = {"action": action, "index": 0, "_selected_action": ids, "select_across": int(select_across), **data}
    return client.post(url, body)


def test_the_changelist_offers_the_bulk_actions_and_no_hard_delete(admin_client):
    TicketFactory()
    content = admin_client.get(CHANGELIST).content.decode()
    for action, (label, *_) in ACTIONS.items():
        assert f'<option value="{action}">{label}</option>' in content
    assert "delete_selected" not in content


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_shows_an_intermediate_form_with_the_count(admin_client, action):
    tickets = TicketFactory.create_batch(3)
    response = act(admin_client, action, [t.pk for t in tickets])
    content = response.content.decode()
    assert response.status_code == 200
    assert '<strong id="bulk-count">3 tickets</strong>' in content
    assert f'name="action" value="{action}"' in content
    assert content.count('name="_selected_action"') == 3
    assert 'value="Start on 3"' in content
    assert not BulkOperation.objects.exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_starts_an_async_operation_and_opens_its_page(admin_client, staff, action):
    _, operation_type, data, operation_data = ACTIONS[action]
    tickets = TicketFactory.create_batch(2)
    response = act(admin_client, action, [t.pk for t in tickets], apply="Start", **data)
    op = BulkOperation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/bulk-operations/{op.pk}/"
    assert (op.user, op.operation_type, op.execution, op.operation_data) == (
        staff,
        operation_type,
        "async",
        operation_data,
    )
    assert list(op.items.values_list("target_id", flat=True)) == [str(t.pk) for t in tickets]


def test_the_menus_offer_categories_by_name(admin_client):
    category = CategoryFactory(name="Hardware")
    content = act(admin_client, "bulk_set_category", [TicketFactory().pk]).content.decode()
    assert f'<option value="{category.pk}">Hardware</option>' in content


def test_an_invalid_form_is_shown_again_with_its_error(admin_client):
    ticket = TicketFactory()
    response = act(admin_client, "bulk_add_comment", [ticket.pk], apply="Start", **{"data-body": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not BulkOperation.objects.exists()


def test_select_all_takes_the_whole_filtered_changelist_not_the_page(admin_client):
    urgent = TicketFactory.create_batch(105, priority="urgent")  # more than one changelist page (100)
    TicketFactory.create_batch(3, priority="low")
    url = f"{CHANGELIST}?priority__exact=urgent"
    form = act(admin_client, "bulk_set_priority", [urgent[0].pk], url=url, select_across=True)
    assert '<strong id="bulk-count">105 tickets</strong>' in form.content.decode()
    act(admin_client, "bulk_set_priority", [urgent[0].pk], url=url, select_across=True, apply="Start",
        **{"data-priority": "high"})  # fmt: skip
    op = BulkOperation.objects.get()
    assert list(op.items.order_by("position").values_list("target_id", flat=True)) == [str(t.pk) for t in urgent]


def test_too_many_active_operations_is_said_on_the_form(admin_client, settings):
    settings.BULKOPS_MAX_ACTIVE_PER_USER = 0
    response = act(admin_client, "bulk_delete", [TicketFactory().pk], apply="Start")
    assert response.status_code == 200
    assert "Too many pending or running operations" in response.content.decode()


def test_actions_need_staff_the_right_permission_and_a_csrf_token():
    ticket = TicketFactory()
    agent = Client()
    agent.force_login(AgentFactory())
    assert act(agent, "bulk_update_status", [ticket.pk], apply="Start", **{"data-status": "closed"}).status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(StaffFactory())
    assert act(strict, "bulk_update_status", [ticket.pk], apply="Start", **{"data-status": "closed"}).status_code == 403
    assert not BulkOperation.objects.exists()


def test_staff_without_the_delete_permission_are_not_offered_delete():
    staff = AgentFactory(is_staff=True, perms=["tickets.view_ticket", "tickets.change_ticket"])
    client = Client()
    client.force_login(staff)
    TicketFactory()
    content = client.get(CHANGELIST).content.decode()
    assert "bulk_update_status" in content
    assert "bulk_delete" not in content


@pytest.mark.django_db(transaction=True)
def test_an_admin_action_changes_the_tickets_on_a_worker():
    client = Client()
    client.force_login(StaffFactory())
    tickets = TicketFactory.create_batch(3)
    act(client, "bulk_update_status", [t.pk for t in tickets], apply="Start", **{"data-status": "resolved"})
    work_off()
    assert BulkOperation.objects.get().status == "completed"
    assert set(Ticket.objects.values_list("status", flat=True)) == {"resolved"}


@pytest.mark.django_db
def test_the_change_page_delete_is_a_soft_delete_with_an_audit_row(client):
    staff = StaffFactory()
    ticket = TicketFactory()
    client.force_login(staff)
    response = client.post(f"/admin/tickets/ticket/{ticket.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert ticket.is_deleted and ticket.version == 2
    assert ticket.events.filter(field="is_deleted", new_value="True", actor=staff).exists()


# --- the change, add and delete pages go through tickets.services ----------------------------


def change_page(ticket):
    return f"/admin/tickets/ticket/{ticket.pk}/change/"


def form_of(ticket, **changes):
    """What the change page posts back: the ticket's values, with `changes`."""
    values = {
        "title": ticket.title,
        "description": ticket.description,
        "status": ticket.status,
        "priority": ticket.priority,
        "category": ticket.category_id or "",
        "requester": ticket.requester_id,
        "assignee": ticket.assignee_id or "",
    }
    return {**values, **changes}


def test_the_change_page_refuses_to_reopen_a_closed_ticket_with_the_apis_message(admin_client):
    ticket = TicketFactory(status="closed")
    response = admin_client.post(change_page(ticket), form_of(ticket, status="open", title="Reopened"))
    assert response.status_code == 200
    assert "Cannot change status from closed to open" in response.content.decode()
    ticket.refresh_from_db()
    assert (ticket.status, ticket.title, ticket.version) == ("closed", ticket.title, 1)
    assert not TicketEvent.objects.exists()


def test_a_change_page_edit_bumps_the_version_and_writes_history_as_the_staff_user(admin_client, staff):
    ticket = TicketFactory()
    response = admin_client.post(change_page(ticket), form_of(ticket, status="in_progress", priority="high"))
    assert response.status_code == 302
    ticket.refresh_from_db()
    assert (ticket.status, ticket.priority, ticket.version) == ("in_progress", "high", 2)
    events = ticket.events.values_list("field", "old_value", "new_value", "actor")
    assert sorted(events) == [("priority", "normal", "high", staff.pk), ("status", "open", "in_progress", staff.pk)]


def test_saving_the_change_page_unchanged_changes_nothing(admin_client):
    ticket = TicketFactory()
    assert admin_client.post(change_page(ticket), form_of(ticket)).status_code == 302
    ticket.refresh_from_db()
    assert ticket.version == 1
    assert not TicketEvent.objects.exists()


def test_the_requester_and_deletion_are_not_edited_on_the_change_page(admin_client):
    ticket = TicketFactory()
    other = StaffFactory()
    admin_client.post(change_page(ticket), form_of(ticket, requester=other.pk, is_deleted="on"))
    ticket.refresh_from_db()
    assert (ticket.requester_id, ticket.is_deleted, ticket.version) == (ticket.requester_id, False, 1)
    assert ticket.requester_id != other.pk


def test_the_add_page_creates_a_ticket_through_the_service(admin_client, staff):
    response = admin_client.post("/admin/tickets/ticket/add/", {"title": "Printer", "status": "open",
                                                                "priority": "low", "requester": staff.pk})  # fmt: skip
    ticket = Ticket.objects.get()
    assert response.status_code == 302
    assert response["Location"] == "/admin/tickets/ticket/"
    assert (ticket.title, ticket.priority, ticket.requester, ticket.version) == ("Printer", "low", staff, 1)


def test_a_deleted_ticket_cannot_be_deleted_again_from_its_page(admin_client):
    ticket = TicketFactory(is_deleted=True)
    response = admin_client.post(f"/admin/tickets/ticket/{ticket.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    ticket.refresh_from_db()
    assert ticket.version == 1
    assert not TicketEvent.objects.exists()


# --- the audit trail is read-only ------------------------------------------------------------


def test_ticket_events_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    ticket = TicketFactory()
    admin_client.post(change_page(ticket), form_of(ticket, priority="high"))
    event = TicketEvent.objects.get()
    assert admin_client.get("/admin/tickets/ticketevent/add/").status_code == 403
    assert admin_client.post("/admin/tickets/ticketevent/add/", {"ticket": ticket.pk, "field": "x"}).status_code == 403
    page = f"/admin/tickets/ticketevent/{event.pk}/change/"
    assert admin_client.get(page).status_code == 200
    assert 'name="new_value"' not in admin_client.get(page).content.decode()
    admin_client.post(page, {"ticket": ticket.pk, "field": "status", "new_value": "forged"})
    assert admin_client.post(f"/admin/tickets/ticketevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = admin_client.get("/admin/tickets/ticketevent/").content.decode()
    assert "delete_selected" not in changelist
    assert TicketEvent.objects.values_list("field", "new_value").get() == ("priority", "high")


# --- categories ------------------------------------------------------------------------------


def test_categories_are_added_renamed_and_deleted_on_their_admin_pages(admin_client):
    assert admin_client.post("/admin/tickets/category/add/", {"name": "Network"}).status_code == 302
    category = Category.objects.get()
    assert admin_client.post(f"/admin/tickets/category/{category.pk}/change/", {"name": "Net"}).status_code == 302
    assert Category.objects.get().name == "Net"
    assert admin_client.post(f"/admin/tickets/category/{category.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Category.objects.exists()


def test_a_category_in_use_is_not_deleted_from_its_admin_page(admin_client):
    category = CategoryFactory()
    TicketFactory(category=category)
    response = admin_client.post(f"/admin/tickets/category/{category.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200
    assert Category.objects.filter(pk=category.pk).exists()
