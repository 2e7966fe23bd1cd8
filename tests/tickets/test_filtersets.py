"""The ticket list filters (shared with bulk `filter` selections)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bulkops.models import BulkOperation
from tickets.models import Ticket

from ..factories import CategoryFactory, TicketFactory, UserFactory

pytestmark = pytest.mark.django_db


def ids(client, **params):
    response = client.get("/api/v1/tickets/", params)
    assert response.status_code == 200, response.json()
    return [t["id"] for t in response.json()["results"]]


@pytest.fixture
def client(client_for, agent):
    return client_for(agent)


def test_status_filters_and_takes_several_values(client):
    opened, pending = TicketFactory(status="open"), TicketFactory(status="pending")
    TicketFactory(status="closed")
    assert ids(client, status="open") == [opened.pk]
    assert ids(client, status=["open", "pending"]) == [opened.pk, pending.pk]


def test_priority_filters(client):
    high = TicketFactory(priority="high")
    TicketFactory(priority="low")
    assert ids(client, priority="high") == [high.pk]


def test_category_filters(client):
    category = CategoryFactory()
    ticket = TicketFactory(category=category)
    TicketFactory(category=CategoryFactory())
    assert ids(client, category=category.pk) == [ticket.pk]


def test_assignee_filters(client, agent):
    ticket = TicketFactory(assignee=agent)
    TicketFactory()
    assert ids(client, assignee=agent.pk) == [ticket.pk]


def test_requester_filters(client):
    requester = UserFactory()
    ticket = TicketFactory(requester=requester)
    TicketFactory()
    assert ids(client, requester=requester.pk) == [ticket.pk]


def test_search_looks_in_title_and_description_ignoring_case(client):
    by_title = TicketFactory(title="Printer jammed")
    by_description = TicketFactory(title="Floor 3", description="the PRINTER again")
    TicketFactory(title="VPN")
    assert ids(client, search="printer") == [by_title.pk, by_description.pk]


def test_created_after_and_before_bound_the_creation_time(client):
    now = timezone.now()
    old, middle, new = TicketFactory(), TicketFactory(), TicketFactory()
    for ticket, days in [(old, 10), (middle, 5), (new, 1)]:
        Ticket.objects.filter(pk=ticket.pk).update(created_at=now - timedelta(days=days))
    after, before = (now - timedelta(days=7)).isoformat(), (now - timedelta(days=2)).isoformat()
    assert ids(client, created_after=after) == [middle.pk, new.pk]
    assert ids(client, created_before=before) == [old.pk, middle.pk]
    assert ids(client, created_after=after, created_before=before) == [middle.pk]


def test_filters_combine(client, agent):
    match = TicketFactory(status="open", priority="high", assignee=agent, title="printer")
    TicketFactory(status="open", priority="high", title="printer")
    TicketFactory(status="open", priority="low", assignee=agent, title="printer")
    assert ids(client, status="open", priority="high", assignee=agent.pk, search="printer") == [match.pk]


def test_filters_never_reveal_invisible_tickets(client_for):
    user = UserFactory()
    mine = TicketFactory(requester=user, priority="high")
    TicketFactory(priority="high")
    assert ids(client_for(user), priority="high") == [mine.pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "bogus"}, "status"),
        ({"priority": "HIGH"}, "priority"),
        ({"category": 987654}, "category"),
        ({"category": "abc"}, "category"),
        ({"assignee": "abc"}, "assignee"),
        ({"assignee": "1.5"}, "assignee"),
        ({"requester": "me"}, "requester"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
    ],
)
def test_a_bad_filter_value_is_400_naming_the_filter(client, params, field):
    response = client.get("/api/v1/tickets/", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in error["details"]
    assert error["message"].startswith(f"{field}: ")


def test_an_offset_postgresql_would_refuse_is_turned_into_utc(client):
    ticket = TicketFactory()
    assert ids(client, created_after="1710-03-25T11:19:36+19:33") == [ticket.pk]
    assert ids(client, created_before="1710-03-25T11:19:36+19:33") == []


@pytest.mark.parametrize(
    ("name", "when"), [("created_before", "0001-01-01T00:00:00+05:00"), ("created_after", "9999-12-31T23:59:59-01:00")]
)
def test_a_time_with_no_utc_equivalent_is_400(client, name, when):
    response = client.get("/api/v1/tickets/", {name: when})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"{name}: Enter a time between the years 1 and 9999 in UTC."


def test_a_nul_character_in_search_is_400_not_500(client):
    assert client.get("/api/v1/tickets/", {"search": "a\x00b"}).status_code == 400


# A selection means what it says (SPEC §11): a filter that is given but cannot be used is an
# error naming it, never "no filter" (which selects every visible ticket).
UNUSABLE = [
    ({"is_deleted": "maybe"}, "is_deleted", "“maybe” is not a value this filter can use."),
    ({"is_deleted": "no"}, "is_deleted", "“no” is not a value this filter can use."),
    ({"assignee": ""}, "assignee", "Empty: give a value, or leave this filter out."),
    ({"created_after": ""}, "created_after", "Empty: give a value, or leave this filter out."),
    ({"status": ""}, "status", "Empty: give a value, or leave this filter out."),
    ({"category": ""}, "category", "Empty: give a value, or leave this filter out."),
    ({"search": " "}, "search", "Empty: give a value, or leave this filter out."),
]


@pytest.mark.parametrize(("params", "field", "message"), UNUSABLE)
def test_an_empty_or_unusable_filter_is_400_naming_it_not_no_filter(client, params, field, message):
    TicketFactory()
    response = client.get("/api/v1/tickets/", params)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "VALIDATION_ERROR", "message": f"{field}: {message}", "details": {field: [message]}}
    }


def test_is_deleted_takes_true_or_false(client_for, staff):
    live, deleted = TicketFactory(), TicketFactory(is_deleted=True)
    assert ids(client_for(staff), is_deleted="false") == [live.pk]
    assert ids(client_for(staff), is_deleted="true") == [deleted.pk]


def start_on(client, selection):
    body = {"resource_type": "tickets", "filter": selection, "operation_type": "add_comment"}
    return client.post("/api/v1/bulk-operations/", {**body, "operation_data": {"body": "Twice?"}}, format="json")


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        *UNUSABLE,
        ({"created_after": "yesterday"}, "created_after", "Enter a valid date/time."),
        ({"status": "bogus"}, "status", "Select a valid choice. bogus is not one of the available choices."),
        ({"assignee": "abc"}, "assignee", "Enter a whole number."),
    ],
)
def test_a_bulk_filter_that_cannot_be_used_is_400_and_creates_nothing(client, params, field, message):
    TicketFactory.create_batch(3)
    response = start_on(client, params)
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "VALIDATION_ERROR",
            "message": f"filter: {field}: {message}",
            "details": {"filter": {field: [message]}},
        }
    }
    assert not BulkOperation.objects.exists()


def test_a_bulk_filter_of_json_false_selects_the_live_tickets(client_for, staff):
    live = TicketFactory()
    TicketFactory(is_deleted=True)
    response = start_on(client_for(staff), {"is_deleted": False})
    assert response.status_code == 202, response.json()
    assert list(BulkOperation.objects.get().items.values_list("target_id", flat=True)) == [str(live.pk)]
