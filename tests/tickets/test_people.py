"""Directory privacy (SPEC §16): a requester sees by name, and learns the ids of, only the
people on the tickets they can see — never the whole user list. Agents and staff see everyone."""

import re

import pytest
from django.contrib.auth import get_user_model

from bulkops.models import BulkOperation
from tickets.models import Ticket
from tickets.people import visible_people

from ..factories import AgentFactory, StaffFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def requester():
    return UserFactory(username="req")


@pytest.fixture
def people(requester):
    """The requester's ticket names an assignee; a stranger appears on no ticket of theirs."""
    assignee = UserFactory(username="helper")
    TicketFactory(requester=requester, assignee=assignee)
    other_requester = UserFactory(username="colleague")
    TicketFactory(requester=other_requester, assignee=requester)
    stranger = UserFactory(username="stranger")
    TicketFactory(requester=stranger)
    UserFactory(username="retired", is_active=False)
    return {"assignee": assignee, "colleague": other_requester, "stranger": stranger}


def picker_names(content, name):
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', content, re.S).group(1)
    return [label for label in re.findall(r"<option[^>]*>([^<]*)</option>", select) if label != "Anyone"]


def test_a_requester_sees_themselves_and_the_people_on_their_tickets(requester, people):
    assert sorted(u.username for u in visible_people(requester)) == ["colleague", "helper", "req"]


@pytest.mark.parametrize("make", [AgentFactory, StaffFactory])
def test_agents_and_staff_see_every_active_user(people, make):
    viewer = make()
    expected = set(get_user_model().objects.filter(is_active=True))
    assert set(visible_people(viewer)) == expected


@pytest.mark.parametrize("picker", ["assignee", "requester"])
def test_the_ticket_page_pickers_show_a_requester_only_the_people_they_may_see(client, requester, people, picker):
    client.force_login(requester)
    content = client.get("/tickets/").content.decode()
    assert picker_names(content, picker) == ["colleague", "helper", "req"]


def test_the_ticket_page_pickers_show_an_agent_everyone(client, people):
    agent = AgentFactory(username="zed")
    client.force_login(agent)
    content = client.get("/tickets/").content.decode()
    assert picker_names(content, "assignee") == ["colleague", "helper", "req", "stranger", "zed"]


def test_the_assign_menu_names_nobody_to_a_requester_who_may_not_assign(client, requester, people):
    """A requester is not offered Assign at all (SPEC §2.1), so its picker lists nobody."""
    client.force_login(requester)
    ticket = Ticket.objects.get(requester=requester)
    response = client.post("/tickets/bulk/", {"operation": "assign", "query": "", "ids": [ticket.pk]}, follow=True)
    assert 'name="data-assignee_id"' not in response.content.decode()
    assert "stranger" not in response.content.decode()
    assert not BulkOperation.objects.exists()


def test_the_assign_menu_shows_an_agent_everyone(client, people):
    client.force_login(AgentFactory(username="zed"))
    ticket = Ticket.objects.first()
    content = client.post("/tickets/bulk/", {"operation": "assign", "query": "", "ids": [ticket.pk]}).content.decode()
    assert picker_names(content, "data-assignee_id") == ["— none —", "colleague", "helper", "req", "stranger", "zed"]


def test_an_invisible_user_id_gets_the_message_of_one_that_does_not_exist(client_for, requester, people):
    ticket = Ticket.objects.get(requester=requester)
    client = client_for(requester)
    missing = get_user_model().objects.order_by("pk").last().pk + 1000
    answers = [
        client.patch(f"/api/v1/tickets/{ticket.pk}/", {"assignee_id": user_id}, format="json").json()["error"]
        for user_id in (people["stranger"].pk, missing)
    ]
    assert [a["message"] for a in answers] == [
        f"assignee_id: No active user with id {people['stranger'].pk}.",
        f"assignee_id: No active user with id {missing}.",
    ]
    assert {a["code"] for a in answers} == {"VALIDATION_ERROR"}


@pytest.mark.parametrize(
    "send",
    [
        lambda c, t, u: c.post("/api/v1/tickets/", {"title": "x", "requester_id": u}, format="json"),
        lambda c, t, u: c.patch("/api/v1/tickets/", [{"id": t.pk, "assignee_id": u}], format="json"),
        lambda c, t, u: c.post(
            "/api/v1/batch/",
            {"operations": [{"method": "PATCH", "resource_type": "tickets", "id": t.pk, "data": {"assignee_id": u}}]},
            format="json",
        ),
        lambda c, t, u: c.post(
            "/api/v1/tickets/bulk-operations/",
            {"ticket_ids": [t.pk], "operation_type": "assign", "operation_data": {"assignee_id": u}},
            format="json",
        ),
    ],
    ids=["create", "collection", "batch", "bulk"],
)
def test_every_door_gives_the_not_found_message_for_an_invisible_user(client_for, requester, people, send):
    ticket = Ticket.objects.get(requester=requester)
    stranger = people["stranger"].pk
    body = send(client_for(requester), ticket, stranger).json()
    assert f"No active user with id {stranger}." in str(body)
    assert Ticket.objects.get(pk=ticket.pk).assignee == people["assignee"]
    assert not Ticket.objects.filter(title="x").exists()


def test_an_agent_may_still_name_anyone(client_for, people):
    ticket = TicketFactory()
    response = client_for(AgentFactory()).patch(
        f"/api/v1/tickets/{ticket.pk}/", {"assignee_id": people["stranger"].pk}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert Ticket.objects.get(pk=ticket.pk).assignee == people["stranger"]


def test_a_visible_user_id_still_reaches_the_permission_check(client_for, requester, people):
    ticket = Ticket.objects.get(requester=requester)
    response = client_for(requester).patch(
        f"/api/v1/tickets/{ticket.pk}/", {"assignee_id": people["colleague"].pk}, format="json"
    )
    assert response.status_code == 403
    assert not BulkOperation.objects.exists()
