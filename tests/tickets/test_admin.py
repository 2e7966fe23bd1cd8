"""The bulk actions on the Ticket changelist: an intermediate form, then an async operation."""

import pytest
from django.test import Client

from bulkops.models import BulkOperation
from tickets.models import Ticket

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
