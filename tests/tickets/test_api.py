"""The ticket endpoints: /api/v1/tickets/ (SPEC §5.1)."""

import pytest

from tickets.models import Comment, Ticket, TicketEvent

from ..factories import AgentFactory, CategoryFactory, StaffFactory, TicketFactory, UserFactory
from ..races import while_uncommitted

pytestmark = pytest.mark.django_db

TICKET_KEYS = {
    "id", "external_id", "title", "description", "status", "priority", "category_id", "requester_id", "assignee_id",
    "version", "is_deleted", "deleted_at", "created_at", "updated_at",
}  # fmt: skip


def url(ticket=None, suffix=""):
    return "/api/v1/tickets/" + (f"{ticket.pk}/" if ticket else "") + suffix


def deleter():
    return AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])


# --- list and retrieve --------------------------------------------------------------------


def test_the_list_uses_the_limit_offset_envelope(client_for, agent):
    TicketFactory.create_batch(3)
    body = client_for(agent).get(url(), {"limit": 2}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"] and body["previous"] is None
    assert set(body["results"][0]) == TICKET_KEYS


def test_a_ticket_is_shown_with_all_its_fields(client_for, agent):
    category = CategoryFactory()
    ticket = TicketFactory(title="Printer", category=category, assignee=agent, priority="high")
    body = client_for(agent).get(url(ticket)).json()
    assert body["id"] == ticket.pk
    assert (body["title"], body["priority"], body["status"]) == ("Printer", "high", "open")
    assert (body["category_id"], body["requester_id"], body["assignee_id"]) == (
        category.pk,
        ticket.requester_id,
        agent.pk,
    )
    assert (body["version"], body["is_deleted"], body["deleted_at"]) == (1, False, None)


def test_a_requester_lists_only_tickets_they_requested_or_are_assigned_to(client_for):
    user = UserFactory()
    requested, assigned = TicketFactory(requester=user), TicketFactory(assignee=user)
    TicketFactory()
    ids = [t["id"] for t in client_for(user).get(url()).json()["results"]]
    assert ids == [requested.pk, assigned.pk]


def test_an_agent_lists_every_live_ticket(client_for, agent):
    tickets = TicketFactory.create_batch(2)
    TicketFactory(is_deleted=True)
    ids = [t["id"] for t in client_for(agent).get(url()).json()["results"]]
    assert ids == [t.pk for t in tickets]


def test_staff_list_deleted_tickets_too_and_can_filter_them(client_for, staff):
    live, deleted = TicketFactory(), TicketFactory(is_deleted=True)
    client = client_for(staff)
    assert [t["id"] for t in client.get(url()).json()["results"]] == [live.pk, deleted.pk]
    assert [t["id"] for t in client.get(url(), {"is_deleted": "true"}).json()["results"]] == [deleted.pk]
    assert [t["id"] for t in client.get(url(), {"is_deleted": "false"}).json()["results"]] == [live.pk]


@pytest.mark.parametrize("who", ["requester", "agent"])
def test_a_deleted_ticket_is_not_found_for_everyone_but_staff(client_for, who):
    ticket = TicketFactory(is_deleted=True)
    user = ticket.requester if who == "requester" else AgentFactory()
    response = client_for(user).get(url(ticket))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_staff_retrieve_a_deleted_ticket(client_for, staff):
    ticket = TicketFactory(is_deleted=True)
    response = client_for(staff).get(url(ticket))
    assert response.status_code == 200
    assert response.json()["is_deleted"] is True


@pytest.mark.parametrize("role", ["requester", "assignee", "agent", "staff"])
def test_who_may_see_a_ticket(client_for, role):
    assignee = UserFactory()
    ticket = TicketFactory(assignee=assignee)
    user = {"requester": ticket.requester, "assignee": assignee, "agent": AgentFactory(), "staff": StaffFactory()}[role]
    assert client_for(user).get(url(ticket)).status_code == 200


def test_a_stranger_gets_404_not_403(client_for, user):
    ticket = TicketFactory()
    response = client_for(user).get(url(ticket))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Ticket not found", "details": None}}


def test_a_missing_ticket_looks_like_an_invisible_one(client_for, user):
    hidden = client_for(user).get(url(TicketFactory())).json()
    missing = client_for(user).get("/api/v1/tickets/99999999/").json()
    assert hidden == missing


# --- field selection ------------------------------------------------------------------------


def test_fields_selects_what_the_list_returns(client_for, agent):
    TicketFactory()
    body = client_for(agent).get(url(), {"fields": "id,status"}).json()
    assert list(body["results"][0]) == ["id", "status"]


def test_fields_selects_what_retrieve_returns(client_for, agent):
    ticket = TicketFactory()
    assert client_for(agent).get(url(ticket), {"fields": "version, title"}).json() == {
        "title": ticket.title,
        "version": 1,
    }


def test_unknown_field_names_are_ignored(client_for, agent):
    ticket = TicketFactory()
    assert client_for(agent).get(url(ticket), {"fields": "id,nope"}).json() == {"id": ticket.pk}


def test_fields_does_not_narrow_a_patch_response(client_for, agent):
    ticket = TicketFactory()
    body = client_for(agent).patch(url(ticket) + "?fields=id", {"priority": "low"}, format="json").json()
    assert set(body) == TICKET_KEYS


# --- create -------------------------------------------------------------------------------


def test_a_user_creates_a_ticket_they_request(client_for, user):
    response = client_for(user).post(url(), {"title": "VPN down", "description": "Since 9am"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["title"], body["requester_id"], body["status"], body["version"]) == ("VPN down", user.pk, "open", 1)
    assert Ticket.objects.get(pk=body["id"]).requester == user


def test_an_agent_creates_a_ticket_with_every_field(client_for, agent):
    requester, category = UserFactory(), CategoryFactory()
    data = {
        "title": "Laptop",
        "status": "in_progress",
        "priority": "urgent",
        "category_id": category.pk,
        "assignee_id": agent.pk,
        "requester_id": requester.pk,
    }
    body = client_for(agent).post(url(), data, format="json").json()
    assert {key: body[key] for key in data} == data


def test_a_requester_may_not_create_with_agent_fields(client_for, user):
    response = client_for(user).post(url(), {"title": "x", "priority": "urgent"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PERMISSION_DENIED"
    assert not Ticket.objects.exists()


def test_create_needs_a_title(client_for, user):
    response = client_for(user).post(url(), {"description": "no title"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "title: This field is required."


@pytest.mark.parametrize(
    ("field", "value"), [("requester_id", 987654), ("assignee_id", 987654), ("category_id", 987654)]
)
def test_create_refuses_ids_that_do_not_exist(client_for, agent, field, value):
    response = client_for(agent).post(url(), {"title": "x", field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


# --- PATCH --------------------------------------------------------------------------------


def test_patch_changes_the_ticket_and_returns_it(client_for, agent):
    ticket = TicketFactory()
    response = client_for(agent).patch(url(ticket), {"status": "in_progress", "assignee_id": agent.pk}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["assignee_id"], body["version"]) == ("in_progress", agent.pk, 2)
    ticket.refresh_from_db()
    assert (ticket.status, ticket.assignee_id, ticket.version) == ("in_progress", agent.pk, 2)


def test_patch_with_the_current_version_succeeds(client_for, agent):
    ticket = TicketFactory(version=4)
    response = client_for(agent).patch(url(ticket), {"priority": "low", "version": 4}, format="json")
    assert response.status_code == 200
    assert response.json()["version"] == 5


def test_patch_with_a_stale_version_is_409_conflict(client_for, agent):
    ticket = TicketFactory(version=4)
    response = client_for(agent).patch(url(ticket), {"priority": "low", "version": 3}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "CONFLICT",
        "message": f"Ticket {ticket.pk} is at version 4, not 3",
        "details": None,
    }
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_patch_without_a_real_change_keeps_the_version(client_for, agent):
    ticket = TicketFactory(priority="high")
    body = client_for(agent).patch(url(ticket), {"priority": "high"}, format="json").json()
    assert body["version"] == 1
    assert not TicketEvent.objects.exists()


def test_patch_to_a_refused_status_is_400_invalid_transition(client_for, agent):
    ticket = TicketFactory(status="closed")
    response = client_for(agent).patch(url(ticket), {"status": "open"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_TRANSITION"
    assert response.json()["error"]["message"] == "Cannot change status from closed to open"


def test_a_requester_patches_the_title_of_their_own_ticket(client_for):
    ticket = TicketFactory()
    response = client_for(ticket.requester).patch(url(ticket), {"title": "Clearer"}, format="json")
    assert response.status_code == 200
    assert response.json()["title"] == "Clearer"


def test_a_requester_setting_the_status_is_403(client_for):
    ticket = TicketFactory()
    response = client_for(ticket.requester).patch(url(ticket), {"status": "closed"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "PERMISSION_DENIED",
        "message": "Insufficient permissions to update ticket",
        "details": None,
    }


def test_an_assignee_without_agent_permission_patching_is_403(client_for, user):
    ticket = TicketFactory(assignee=user)
    assert client_for(user).patch(url(ticket), {"title": "x"}, format="json").status_code == 403


def test_a_stranger_patching_is_404(client_for, user):
    ticket = TicketFactory()
    assert client_for(user).patch(url(ticket), {"title": "x"}, format="json").status_code == 404
    assert Ticket.objects.get(pk=ticket.pk).version == 1


def test_patching_a_deleted_ticket_is_404_even_for_staff(client_for, staff):
    ticket = TicketFactory(is_deleted=True)
    assert client_for(staff).patch(url(ticket), {"title": "x"}, format="json").status_code == 404


def test_patch_with_nothing_to_change_is_400(client_for, agent):
    ticket = TicketFactory()
    response = client_for(agent).patch(url(ticket), {"version": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Nothing to change: give at least one field."


def test_patch_can_unassign(client_for, agent):
    ticket = TicketFactory(assignee=agent)
    assert client_for(agent).patch(url(ticket), {"assignee_id": None}, format="json").json()["assignee_id"] is None


# --- DELETE and restore -------------------------------------------------------------------


def test_delete_is_a_soft_delete(client_for):
    ticket = TicketFactory()
    response = client_for(deleter()).delete(url(ticket))
    assert response.status_code == 204
    ticket.refresh_from_db()
    assert ticket.is_deleted and ticket.deleted_at and ticket.version == 2


def test_a_deleted_ticket_disappears_from_list_and_retrieve(client_for):
    user = deleter()
    ticket = TicketFactory()
    client = client_for(user)
    client.delete(url(ticket))
    assert client.get(url()).json()["count"] == 0
    assert client.get(url(ticket)).status_code == 404


def test_deleting_twice_is_404(client_for):
    user, ticket = deleter(), TicketFactory()
    client_for(user).delete(url(ticket))
    assert client_for(user).delete(url(ticket)).status_code == 404


def test_an_agent_without_the_delete_permission_gets_403(client_for, agent):
    ticket = TicketFactory()
    response = client_for(agent).delete(url(ticket))
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Insufficient permissions to delete ticket"
    assert not Ticket.objects.get(pk=ticket.pk).is_deleted


def test_a_requester_without_the_delete_permission_gets_403(client_for):
    ticket = TicketFactory()
    assert client_for(ticket.requester).delete(url(ticket)).status_code == 403


def test_a_stranger_deleting_gets_404(client_for):
    ticket = TicketFactory()
    assert client_for(UserFactory(perms=["tickets.delete_ticket"])).delete(url(ticket)).status_code == 404


def test_staff_delete_and_restore(client_for, staff):
    ticket = TicketFactory()
    client = client_for(staff)
    assert client.delete(url(ticket)).status_code == 204
    response = client.post(url(ticket, "restore/"))
    assert response.status_code == 200
    assert (response.json()["is_deleted"], response.json()["version"]) == (False, 3)


def test_an_agent_with_the_delete_permission_restores_a_ticket_it_cannot_otherwise_see(client_for):
    user, ticket = deleter(), TicketFactory(is_deleted=True)
    assert client_for(user).get(url(ticket)).status_code == 404
    response = client_for(user).post(url(ticket, "restore/"))
    assert response.status_code == 200
    assert Ticket.objects.get(pk=ticket.pk).is_deleted is False


def test_restore_without_the_delete_permission_is_403(client_for):
    ticket = TicketFactory(is_deleted=True)
    assert client_for(ticket.requester).post(url(ticket, "restore/")).status_code == 403


def test_restore_by_a_stranger_is_404(client_for):
    ticket = TicketFactory(is_deleted=True)
    assert client_for(UserFactory(perms=["tickets.delete_ticket"])).post(url(ticket, "restore/")).status_code == 404


# --- history ----------------------------------------------------------------------------------


def test_history_lists_each_changed_field_in_order(client_for, agent):
    ticket = TicketFactory()
    client = client_for(agent)
    client.patch(url(ticket), {"status": "in_progress"}, format="json")
    client.patch(url(ticket), {"priority": "high"}, format="json")
    body = client.get(url(ticket, "history/")).json()
    assert body["count"] == 2
    first, second = body["results"]
    assert set(first) == {"field", "old_value", "new_value", "actor", "bulk_operation", "reason", "created_at"}
    assert (first["field"], first["old_value"], first["new_value"], first["actor"]) == (
        "status",
        "open",
        "in_progress",
        agent.pk,
    )
    assert (first["bulk_operation"], first["reason"]) == (None, "")
    assert (second["field"], second["old_value"], second["new_value"]) == ("priority", "normal", "high")


def test_history_takes_fields(client_for, agent):
    ticket = TicketFactory()
    client_for(agent).patch(url(ticket), {"priority": "low"}, format="json")
    body = client_for(agent).get(url(ticket, "history/"), {"fields": "field,new_value"}).json()
    assert body["results"] == [{"field": "priority", "new_value": "low"}]


def test_history_of_an_invisible_ticket_is_404(client_for, user):
    assert client_for(user).get(url(TicketFactory(), "history/")).status_code == 404


def test_staff_see_the_history_of_a_deleted_ticket(client_for, staff):
    ticket = TicketFactory()
    client_for(staff).delete(url(ticket))
    fields = [e["field"] for e in client_for(staff).get(url(ticket, "history/")).json()["results"]]
    assert sorted(fields) == ["deleted_at", "is_deleted"]


# --- comments ---------------------------------------------------------------------------------


def test_a_requester_comments_on_their_own_ticket(client_for):
    ticket = TicketFactory()
    response = client_for(ticket.requester).post(url(ticket, "comments/"), {"body": "Any news?"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["ticket"], body["author"], body["body"], body["bulk_operation"]) == (
        ticket.pk,
        ticket.requester_id,
        "Any news?",
        None,
    )
    assert Comment.objects.get().body == "Any news?"


def test_comments_are_listed_oldest_first(client_for, agent):
    ticket = TicketFactory()
    client = client_for(agent)
    for body in ["one", "two"]:
        client.post(url(ticket, "comments/"), {"body": body}, format="json")
    response = client.get(url(ticket, "comments/"))
    assert [c["body"] for c in response.json()["results"]] == ["one", "two"]


def test_comments_take_fields(client_for, agent):
    ticket = TicketFactory()
    client_for(agent).post(url(ticket, "comments/"), {"body": "hi"}, format="json")
    assert client_for(agent).get(url(ticket, "comments/"), {"fields": "body"}).json()["results"] == [{"body": "hi"}]


def test_an_assignee_without_agent_permission_may_read_but_not_add_comments(client_for, user):
    ticket = TicketFactory(assignee=user)
    assert client_for(user).get(url(ticket, "comments/")).status_code == 200
    assert client_for(user).post(url(ticket, "comments/"), {"body": "x"}, format="json").status_code == 403


def test_a_stranger_neither_reads_nor_adds_comments(client_for, user):
    ticket = TicketFactory()
    assert client_for(user).get(url(ticket, "comments/")).status_code == 404
    assert client_for(user).post(url(ticket, "comments/"), {"body": "x"}, format="json").status_code == 404
    assert not Comment.objects.exists()


def test_a_comment_needs_a_body(client_for, agent):
    response = client_for(agent).post(url(TicketFactory(), "comments/"), {"body": ""}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "body: This field may not be blank."


def test_a_deleted_ticket_takes_no_comments(client_for, staff):
    ticket = TicketFactory(is_deleted=True)
    assert client_for(staff).post(url(ticket, "comments/"), {"body": "x"}, format="json").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/tickets/", "/api/v1/tickets/1/", "/api/v1/categories/"])
def test_options_describes_the_endpoint(client_for, agent, path):
    assert client_for(agent).options(path).status_code == 200


@pytest.mark.parametrize(("limit", "offset"), [(18446744073709551617, 0), (5000, 0), (2, 2**70), (-3, -1)])
def test_limit_and_offset_beyond_reason_are_bounded_not_errors(client_for, agent, limit, offset):
    TicketFactory.create_batch(3)
    response = client_for(agent).get("/api/v1/tickets/", {"limit": limit, "offset": offset})
    assert response.status_code == 200
    assert len(response.json()["results"]) <= 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_request_that_loses_the_race_for_an_external_id_is_409_not_500(client_for, method):
    agent = AgentFactory()
    ticket = TicketFactory(requester=agent, title="Printer")
    client = client_for(agent)
    send = {
        "POST": lambda: client.post(url(), {"title": "Scanner", "external_id": "CRM-7"}, format="json"),
        "PATCH": lambda: client.patch(url(ticket), {"external_id": "CRM-7"}, format="json"),
    }[method]

    response = while_uncommitted(lambda: TicketFactory(requester=agent, title="Other", external_id="CRM-7"), send)

    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "CONFLICT", "message": "A ticket with this external id exists already.", "details": None}
    }
    assert sorted(Ticket.objects.values_list("title", "external_id", "version")) == [
        ("Other", "CRM-7", 1),
        ("Printer", None, 1),
    ]
