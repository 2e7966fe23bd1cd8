"""PATCH /api/v1/tickets/: many tickets, one transaction, all or nothing (SPEC §5.2)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.throttling import ScopedRateThrottle

from bulkops.models import BulkOperation
from tickets.api.serializers import TicketSerializer
from tickets.models import Ticket, TicketEvent

from ..factories import AgentFactory, CategoryFactory, TicketFactory, UserFactory

URL = "/api/v1/tickets/"
# config.exceptions.first_message drops the "[i] " of an element's non_field_errors.
pytestmark = pytest.mark.django_db


def patch(client, body):
    return client.patch(URL, body, format="json")


def snapshot():
    """Everything a collection PATCH could change, to compare before and after."""
    return list(Ticket.objects.order_by("pk").values())


def test_it_changes_every_ticket_and_answers_with_them_in_request_order(client_for, agent):
    first, second, third = TicketFactory.create_batch(3)
    category, assignee = CategoryFactory(), UserFactory()
    body = [
        {"id": third.pk, "status": "resolved", "priority": "high"},
        {"id": first.pk, "title": "Printer on fire", "description": "Again", "version": 1},
        {"id": second.pk, "category_id": category.pk, "assignee_id": assignee.pk},
    ]

    response = patch(client_for(agent), body)

    assert response.status_code == 200, response.json()
    answer = response.json()
    op = BulkOperation.objects.get()
    assert answer == {
        "success": True,
        "success_count": 3,
        "fail_count": 0,
        "results": [
            {"id": t.pk, "success": True, "data": TicketSerializer(Ticket.objects.get(pk=t.pk)).data}
            for t in (third, first, second)
        ],
        "operation_id": str(op.pk),
    }
    assert Ticket.objects.get(pk=third.pk).status == "resolved"
    assert Ticket.objects.get(pk=first.pk).title == "Printer on fire"
    assert Ticket.objects.get(pk=second.pk).assignee_id == assignee.pk
    assert set(Ticket.objects.values_list("version", flat=True)) == {2}
    assert TicketEvent.objects.filter(bulk_operation=op).count() == 6


def test_it_is_recorded_as_an_atomic_sync_operation_in_the_history(client_for, agent):
    ticket = TicketFactory()
    op_id = patch(client_for(agent), [{"id": ticket.pk, "priority": "low"}]).json()["operation_id"]

    history = client_for(agent).get("/api/v1/tickets/bulk-operations/").json()
    status = client_for(agent).get(f"/api/v1/bulk-operations/{op_id}/").json()

    assert [op["operation_id"] for op in history["operations"]] == [op_id]
    assert (status["operation_type"], status["mode"], status["execution"]) == ("patch", "atomic", "sync")
    assert (status["status"], status["successful_items"], status["total_items"]) == ("completed", 1, 1)
    items = client_for(agent).get(f"/api/v1/bulk-operations/{op_id}/items/").json()["items"]
    assert [(i["item_id"], i["status"]) for i in items] == [(str(ticket.pk), "succeeded")]
    assert client_for(UserFactory()).get(f"/api/v1/bulk-operations/{op_id}/").status_code == 404


def test_an_empty_array_changes_nothing_answers_zero_counts_and_records_no_operation(client_for, agent):
    client = client_for(agent)
    for _ in range(2):
        response = patch(client, [])

        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "success_count": 0,
            "fail_count": 0,
            "results": [],
            "operation_id": None,
        }
    assert not BulkOperation.objects.exists()


def test_the_expected_version_passes_when_it_is_current(client_for, agent):
    ticket = TicketFactory(version=4)

    response = patch(client_for(agent), [{"id": ticket.pk, "version": 4, "status": "pending"}])

    assert response.status_code == 200
    assert response.json()["results"][0]["data"]["version"] == 5


def test_a_stale_version_fails_everything_with_conflict_and_changes_nothing(client_for, agent):
    fresh, stale = TicketFactory(), TicketFactory(version=3)
    before = snapshot()

    response = patch(
        client_for(agent),
        [{"id": fresh.pk, "status": "closed"}, {"id": stale.pk, "version": 2, "title": "Late"}],
    )

    assert response.status_code == 422
    op = BulkOperation.objects.get()
    assert response.json() == {
        "success": False,
        "success_count": 0,
        "fail_count": 2,
        "errors": [
            {
                "id": fresh.pk,
                "error_code": "ROLLED_BACK",
                "error_message": "Rolled back: another item of this atomic operation failed",
            },
            {"id": stale.pk, "error_code": "CONFLICT", "error_message": f"Ticket {stale.pk} is at version 3, not 2"},
        ],
        "operation_id": str(op.pk),
    }
    assert snapshot() == before
    assert not TicketEvent.objects.exists()
    assert (op.status, op.successful_items, op.failed_items) == ("failed", 0, 2)


def test_it_names_every_item_that_fails_its_own_checks(client_for):
    requester = UserFactory()
    own, other_own = TicketFactory(requester=requester), TicketFactory(requester=requester)
    invisible = TicketFactory()
    before = snapshot()

    response = patch(
        client_for(requester),
        [
            {"id": own.pk, "title": "Mine"},
            {"id": other_own.pk, "status": "closed"},
            {"id": invisible.pk, "title": "Not mine"},
            {"id": 999_999, "title": "Nobody's"},
        ],
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["id"], e["error_code"]) for e in errors] == [
        (own.pk, "ROLLED_BACK"),
        (other_own.pk, "PERMISSION_DENIED"),
        (invisible.pk, "NOT_FOUND"),
        (999_999, "NOT_FOUND"),
    ]
    assert response.json()["fail_count"] == 4
    assert snapshot() == before


def test_an_invalid_transition_fails_everything(client_for, agent):
    closed, open_ = TicketFactory(status="closed"), TicketFactory()
    before = snapshot()

    response = patch(client_for(agent), [{"id": open_.pk, "priority": "urgent"}, {"id": closed.pk, "status": "open"}])

    assert response.status_code == 422
    assert response.json()["errors"][1] == {
        "id": closed.pk,
        "error_code": "INVALID_TRANSITION",
        "error_message": "Cannot change status from closed to open",
    }
    assert snapshot() == before


def test_a_requester_may_change_the_titles_of_own_tickets(client_for):
    requester = UserFactory()
    tickets = TicketFactory.create_batch(2, requester=requester)

    response = patch(client_for(requester), [{"id": t.pk, "title": f"Renamed {t.pk}"} for t in tickets])

    assert response.status_code == 200
    assert [t.title for t in Ticket.objects.order_by("pk")] == [f"Renamed {t.pk}" for t in tickets]


def test_it_locks_the_rows_in_id_order_in_one_statement(client_for, agent):
    tickets = TicketFactory.create_batch(3)
    body = [{"id": t.pk, "priority": "high"} for t in reversed(tickets)]

    with CaptureQueriesContext(connection) as queries:
        assert patch(client_for(agent), body).status_code == 200

    locks = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"] and 'FROM "tickets_ticket"' in q["sql"]]
    assert len(locks) == 1
    assert 'ORDER BY "tickets_ticket"."id" ASC' in locks[0]


def test_its_statements_do_not_grow_with_the_number_of_tickets(client_for, agent):
    """The operation is written and read a fixed number of times, whatever its size; the
    items are not read back when every ticket changed."""
    tickets = TicketFactory.create_batch(30)
    client = client_for(agent)

    def statements(count):
        with CaptureQueriesContext(connection) as queries:
            assert patch(client, [{"id": t.pk, "priority": "high"} for t in tickets[:count]]).status_code == 200
        return [q["sql"] for q in queries]

    few, many = statements(3), statements(30)
    assert len(few) == len(many)
    read_back = [sql for sql in many if '"bulkops_bulkoperationitem"."target_id"' in sql and "FOR UPDATE" not in sql]
    assert not read_back  # only the claim reads items one by one


def names_element(message, index, rest):
    """The message locates the element: "[3] status: …"."""
    return message == f"[{index}] {rest}"


@pytest.mark.parametrize(
    ("body", "index", "message"),
    [
        ({"id": 1, "title": "x"}, None, 'Expected a list of items but got type "dict".'),
        pytest.param(["x"], 0, "Invalid data. Expected a dictionary, but got str."),
        ([{"title": "x"}], 0, "id: This field is required."),
        ([{"id": "abc", "title": "x"}], 0, "id: A valid integer is required."),
        ([{"id": True, "title": "x"}], 0, "id: A valid integer is required."),
        ([{"id": 1.5, "title": "x"}], 0, "id: A valid integer is required."),
        ([{"id": "TICKET_STR", "title": "x"}], 0, "id: A valid integer is required."),
        ([{"id": "TICKET", "version": "1", "title": "x"}], 0, "version: A valid integer is required."),
        ([{"id": "TICKET", "assignee_id": "1"}], 0, "assignee_id: A valid integer is required."),
        (
            [{"id": "TICKET", "title": "x"}, {"id": "TICKET", "title": "y"}],
            None,
            "[1] duplicate id TICKET (first at [0]).",
        ),
        ([{"id": "TICKET", "colour": "red"}], 0, "colour: Unknown field."),
        (
            [{"id": "TICKET", "title": "ok"}, {"id": 2, "title": "ok"}, {"id": 3, "status": "done"}],
            2,
            'status: "done" is not a valid choice.',
        ),
        pytest.param([{"id": "TICKET"}], 0, "Nothing to change: give at least one field."),
        (
            [{"id": "TICKET", "version": 0, "title": "x"}],
            0,
            "version: Ensure this value is greater than or equal to 1.",
        ),
        ([{"id": "TICKET", "assignee_id": 999_999}], 0, "assignee_id: No active user with id 999999."),
    ],
)
def test_bad_input_is_refused_naming_the_element_and_nothing_is_stored(client_for, agent, body, index, message):
    ticket = TicketFactory()
    if isinstance(body, list):
        ids = {"TICKET": ticket.pk, "TICKET_STR": str(ticket.pk)}
        body = [{**e, "id": ids[e["id"]]} if isinstance(e, dict) and e.get("id") in ids else e for e in body]
    message = message.replace("TICKET", str(ticket.pk))
    before = snapshot()

    response = patch(client_for(agent), body)

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == message if index is None else names_element(error["message"], index, message), error
    assert snapshot() == before
    assert not BulkOperation.objects.exists()


def test_more_elements_than_the_atomic_limit_are_refused(client_for, agent, settings):
    settings.BULKOPS_MAX_ATOMIC_ITEMS = 2
    tickets = TicketFactory.create_batch(3)

    response = patch(client_for(agent), [{"id": t.pk, "title": "x"} for t in tickets])

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Ensure this field has no more than 2 elements."
    assert not BulkOperation.objects.exists()
    assert not Ticket.objects.filter(title="x").exists()


def test_malformed_json_is_refused(client_for, agent):
    response = client_for(agent).generic("PATCH", URL, "[{", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"


def test_the_list_route_still_lists_and_creates(client_for, agent):
    TicketFactory()
    client = client_for(agent)

    assert client.get(URL).json()["count"] == 1
    assert client.post(URL, {"title": "New"}, format="json").status_code == 201
    assert client.put(URL, [], format="json").status_code == 405
    assert client.delete(URL).status_code == 405


def test_anonymous_requests_are_refused(client_for):
    assert client_for(None).patch(URL, [], format="json").status_code == 401


def test_it_is_throttled_per_user_and_the_list_is_not(client_for, agent, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "bulk", "2/min")
    client = client_for(agent)

    assert [patch(client, []).status_code for _ in range(2)] == [200, 200]
    throttled = patch(client, [])

    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "THROTTLED"
    assert int(throttled["Retry-After"]) > 0
    assert client.get(URL).status_code == 200
    assert patch(client_for(AgentFactory()), []).status_code == 200


def test_it_is_in_the_openapi_schema(client_for, agent):
    schema = client_for(agent).get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/tickets/"]["patch"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    element = schema["components"]["schemas"][body["items"]["$ref"].rsplit("/", 1)[1]]
    assert {"id", "version", "title", "description", "status", "priority", "category_id", "assignee_id"} <= set(
        element["properties"]
    )
    assert set(operation["responses"]) >= {"200", "400", "422", "429"}
    assert {"get", "post", "patch"} <= set(schema["paths"]["/api/v1/tickets/"])


# --- database triggers (seed 004) ----------------------------------------------------------

TRIGGERS = """
CREATE TABLE ticket_audit (ticket_id bigint, old_status text, new_status text);
CREATE FUNCTION ticket_audit_row() RETURNS trigger AS $$
BEGIN
    INSERT INTO ticket_audit VALUES (NEW.id, OLD.status, NEW.status);
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ticket_audit_after AFTER UPDATE ON tickets_ticket
    FOR EACH ROW EXECUTE FUNCTION ticket_audit_row();
CREATE FUNCTION ticket_refuse_title() RETURNS trigger AS $$
BEGIN
    IF NEW.title = 'forbidden' THEN
        RAISE EXCEPTION 'the title "forbidden" is not allowed' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.title = 'boom' THEN
        RAISE EXCEPTION 'boom: refused by a trigger';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ticket_refuse_before BEFORE UPDATE ON tickets_ticket
    FOR EACH ROW EXECUTE FUNCTION ticket_refuse_title();
"""

# The trigger of seed 004: a BEFORE trigger that changes other rows of the same table. A
# single UPDATE of several of those rows fails with 27000 ("tuple to be updated was already
# modified by an operation triggered by the current command").
SIBLINGS_TRIGGER = """
CREATE FUNCTION ticket_touch_siblings() RETURNS trigger AS $$
BEGIN
    IF pg_trigger_depth() = 1 THEN
        UPDATE tickets_ticket SET description = description || '+'
        WHERE requester_id = NEW.requester_id AND id <> NEW.id;
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER ticket_touch_siblings BEFORE UPDATE ON tickets_ticket
    FOR EACH ROW EXECUTE FUNCTION ticket_touch_siblings();
"""


def run_sql(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)


def audit_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT ticket_id, old_status, new_status FROM ticket_audit ORDER BY ticket_id")
        return cursor.fetchall()


def test_it_works_with_triggers_on_the_table(client_for, agent):
    run_sql(TRIGGERS)
    tickets = TicketFactory.create_batch(3)

    response = patch(client_for(agent), [{"id": t.pk, "status": "pending"} for t in tickets])

    assert response.status_code == 200
    assert audit_rows() == [(t.pk, "open", "pending") for t in tickets]


def test_a_trigger_refusal_rolls_everything_back_with_the_items_own_code(client_for, agent):
    run_sql(TRIGGERS)
    first, refused, last = TicketFactory.create_batch(3)
    before = snapshot()

    response = patch(
        client_for(agent),
        [
            {"id": first.pk, "status": "resolved"},
            {"id": refused.pk, "title": "forbidden"},
            {"id": last.pk, "status": "closed"},
        ],
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "id": first.pk,
            "error_code": "ROLLED_BACK",
            "error_message": "Rolled back: another item of this atomic operation failed",
        },
        {"id": refused.pk, "error_code": "VALIDATION_ERROR", "error_message": 'the title "forbidden" is not allowed'},
        {
            "id": last.pk,
            "error_code": "ROLLED_BACK",
            "error_message": "Rolled back: another item of this atomic operation failed",
        },
    ]
    assert snapshot() == before
    assert audit_rows() == []
    assert not TicketEvent.objects.exists()


def test_a_duplicate_the_database_refuses_rolls_everything_back_with_conflict(client_for, agent):
    run_sql("CREATE UNIQUE INDEX test_unique_ticket_title ON tickets_ticket (title)")
    first, duplicate = TicketFactory.create_batch(2)
    taken = TicketFactory(title="Taken")
    before = snapshot()

    response = patch(
        client_for(agent), [{"id": first.pk, "status": "resolved"}, {"id": duplicate.pk, "title": "Taken"}]
    )

    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["id"], e["error_code"]) for e in errors] == [(first.pk, "ROLLED_BACK"), (duplicate.pk, "CONFLICT")]
    assert "test_unique_ticket_title" in errors[1]["error_message"]
    assert snapshot() == before
    assert Ticket.objects.get(title="Taken") == taken


def test_a_trigger_raising_without_a_code_is_a_422_not_a_500(client_for, agent):
    run_sql(TRIGGERS)
    ticket, other = TicketFactory.create_batch(2)
    before = snapshot()

    response = patch(client_for(agent), [{"id": ticket.pk, "title": "boom"}, {"id": other.pk, "priority": "low"}])

    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "id": ticket.pk,
        "error_code": "INTERNAL_ERROR",
        "error_message": "boom: refused by a trigger",
    }
    assert snapshot() == before


def test_a_trigger_that_changes_sibling_rows_does_not_break_it(client_for, agent):
    run_sql(SIBLINGS_TRIGGER)
    requester = UserFactory()
    tickets = TicketFactory.create_batch(3, requester=requester, description="")

    response = patch(client_for(agent), [{"id": t.pk, "status": "in_progress"} for t in tickets])

    assert response.status_code == 200, response.json()
    assert [r["data"]["status"] for r in response.json()["results"]] == ["in_progress"] * 3
    # Each write fired the trigger on the two others; the engine wrote only the status.
    assert [t.description for t in Ticket.objects.order_by("pk")] == ["++", "++", "++"]
    assert [r["data"]["description"] for r in response.json()["results"]] == ["++", "++", "++"]


def test_an_element_may_keep_the_external_id_its_ticket_has(client_for, agent):
    ticket, other = TicketFactory(external_id="CRM-7"), TicketFactory(external_id="CRM-8")

    kept = patch(client_for(agent), [{"id": ticket.pk, "external_id": "CRM-7", "priority": "high"}])
    taken = patch(client_for(agent), [{"id": ticket.pk, "external_id": "CRM-8"}, {"id": other.pk, "priority": "low"}])

    assert kept.status_code == 200, kept.json()
    assert kept.json()["results"][0]["data"]["priority"] == "high"
    assert taken.status_code == 400
    assert taken.json()["error"]["details"] == {
        "0": {"external_id": ["A ticket with this external id exists already."]}
    }
