"""POST /api/v1/batch/ (SPEC §5.4) and POST /api/v1/batch/get/ (§5.5)."""

import ast
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.throttling import ScopedRateThrottle

from bulkops import registry
from bulkops.models import BulkOperation
from metrics.api.serializers import MetricSerializer
from metrics.models import Metric
from tickets.api.serializers import CategorySerializer, TicketSerializer
from tickets.models import Category, Ticket

from ..factories import (
    AgentFactory,
    CategoryFactory,
    MetricFactory,
    MetricPermissionFactory,
    StaffFactory,
    TicketFactory,
    UserFactory,
)

URL = "/api/v1/batch/"
GET_URL = "/api/v1/batch/get/"
pytestmark = pytest.mark.django_db
ROLLED_BACK = {
    "code": "ROLLED_BACK",
    "message": "Rolled back: another item of this atomic operation failed",
    "type": "conflict_error",
}


def run(client, operations, **extra):
    return client.post(URL, {"operations": operations, **extra}, format="json")


def snapshot():
    """Every record a batch could change, to compare before and after."""
    return (
        list(Ticket.objects.order_by("pk").values()),
        list(Category.objects.order_by("pk").values()),
        list(Metric.objects.order_by("pk").values()),
    )


def ticket_data(pk):
    return TicketSerializer(Ticket.objects.get(pk=pk)).data


# --- POST /api/v1/batch/ ---------------------------------------------------------------------


def test_each_operation_answers_as_its_single_endpoint_would(client_for):
    agent = AgentFactory(perms=("tickets.change_ticket", "tickets.delete_ticket"))
    changed, deleted, category = TicketFactory(), TicketFactory(), CategoryFactory()
    metric = MetricFactory(owner=agent)
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": changed.pk, "data": {"status": "resolved"}, "ref": "a"},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "New"}, "ref": "b"},
        {"method": "DELETE", "resource_type": "tickets", "id": deleted.pk},
        {"method": "POST", "resource_type": "categories", "data": {"name": "Hardware"}},
        {"method": "PATCH", "resource_type": "categories", "id": category.pk, "data": {"name": "Software"}},
        {"method": "POST", "resource_type": "metrics", "data": {"name": "Churn"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(metric.pk), "data": {"verification": "verified"}},
    ]

    response = run(client_for(agent), operations)

    assert response.status_code == 200, response.json()
    answer = response.json()
    op = BulkOperation.objects.get()
    created_ticket = Ticket.objects.get(title="New")
    created_metric = Metric.objects.visible_to(agent).get(name="Churn")
    assert answer["results"] == [
        {"index": 0, "ref": "a", "status": 200, "success": True, "data": ticket_data(changed.pk)},
        {"index": 1, "ref": "b", "status": 201, "success": True, "data": ticket_data(created_ticket.pk)},
        {"index": 2, "ref": None, "status": 204, "success": True, "data": None},
        {
            "index": 3,
            "ref": None,
            "status": 201,
            "success": True,
            "data": CategorySerializer(Category.objects.get(name="Hardware")).data,
        },
        {
            "index": 4,
            "ref": None,
            "status": 200,
            "success": True,
            "data": CategorySerializer(category).data | {"name": "Software"},
        },
        {"index": 5, "ref": None, "status": 201, "success": True, "data": MetricSerializer(created_metric).data},
        {
            "index": 6,
            "ref": None,
            "status": 200,
            "success": True,
            "data": MetricSerializer(Metric.objects.visible_to(agent).get(pk=metric.pk)).data,
        },
    ]
    assert {key: answer[key] for key in ("batch_id", "status", "total_operations", "summary")} == {
        "batch_id": str(op.pk),
        "status": "completed",
        "total_operations": 7,
        "summary": {"completed": 7, "failed": 0, "success_rate": 100.0, "progress": 100.0},
    }
    assert answer["created_at"] and answer["completed_at"]
    assert Ticket.objects.get(pk=changed.pk).status == "resolved"
    assert Ticket.objects.get(pk=deleted.pk).is_deleted
    assert Category.objects.get(pk=category.pk).name == "Software"
    assert Metric.objects.get(pk=metric.pk).verification == "verified"
    assert created_metric.owner_id == agent.pk and created_ticket.requester_id == agent.pk


def test_the_operations_run_in_the_order_given(client_for, agent):
    ticket = TicketFactory()
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"status": "in_progress"}},
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"version": 2, "status": "resolved"}},
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"version": 2, "title": "Too late"}},
    ]

    results = run(client_for(agent), operations).json()["results"]

    assert [r["status"] for r in results] == [200, 200, 409]
    assert results[2]["error"] == {
        "code": "CONFLICT",
        "message": f"Ticket {ticket.pk} is at version 3, not 2",
        "type": "conflict_error",
    }
    assert Ticket.objects.get().status == "resolved"


def test_a_ticket_may_be_patched_with_the_external_id_it_has(client_for, agent):
    ticket = TicketFactory(external_id="CRM-7")
    TicketFactory(external_id="CRM-8")
    operations = [
        {
            "method": "PATCH",
            "resource_type": "tickets",
            "id": ticket.pk,
            "data": {"external_id": "CRM-7", "title": "Kept"},
        },
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"external_id": "CRM-8"}},
    ]

    results = run(client_for(agent), operations).json()["results"]

    assert [r["status"] for r in results] == [200, 400]
    assert results[1]["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "external_id: A ticket with this external id exists already.",
        "type": "validation_error",
    }
    assert Ticket.objects.values_list("external_id", "title").get(pk=ticket.pk) == ("CRM-7", "Kept")


def test_a_failing_operation_fails_alone_with_its_status_and_code(client_for):
    requester = UserFactory()
    own = TicketFactory(requester=requester)
    in_use = CategoryFactory(name="In use")
    TicketFactory(category=in_use)
    viewable = MetricPermissionFactory(user=requester, role="can_view").metric
    hidden, missing = MetricFactory(), uuid.uuid4()
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": own.pk, "data": {"title": "Renamed"}},
        {"method": "PATCH", "resource_type": "tickets", "id": own.pk, "data": {"status": "closed"}},
        {"method": "PATCH", "resource_type": "tickets", "id": 999_999, "data": {"title": "x"}},
        {"method": "PATCH", "resource_type": "tickets", "id": own.pk, "data": {"status": "done"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "Mine", "priority": "urgent"}},
        {"method": "DELETE", "resource_type": "tickets", "id": own.pk},
        {"method": "DELETE", "resource_type": "categories", "id": in_use.pk},
        {"method": "PATCH", "resource_type": "metrics", "id": str(viewable.pk), "data": {"verification": "verified"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(hidden.pk), "data": {"name": "x"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(missing), "data": {"name": "x"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "Mine"}},
    ]

    response = run(client_for(requester), operations)

    assert response.status_code == 200
    answer = response.json()
    assert [(r["status"], r["success"]) for r in answer["results"]] == [
        (200, True),
        (403, False),
        (404, False),
        (400, False),
        (403, False),
        (403, False),
        (403, False),
        (403, False),
        (404, False),
        (404, False),
        (201, True),
    ]
    errors = [r.get("error") for r in answer["results"]]
    assert errors[1] == {
        "code": "PERMISSION_DENIED",
        "message": "Insufficient permissions to update ticket",
        "type": "permission_error",
    }
    assert errors[2] == {"code": "NOT_FOUND", "message": "Ticket 999999 not found", "type": "not_found_error"}
    assert errors[3] == {
        "code": "VALIDATION_ERROR",
        "message": 'status: "done" is not a valid choice.',
        "type": "validation_error",
    }
    assert errors[9] == {"code": "NOT_FOUND", "message": f"Metric {missing} not found", "type": "not_found_error"}
    assert all("data" not in r for r in answer["results"] if not r["success"])
    assert (answer["status"], answer["summary"]) == (
        "partial",
        {"completed": 2, "failed": 9, "success_rate": 18.18, "progress": 100.0},
    )
    assert Ticket.objects.get(pk=own.pk).title == "Renamed"
    assert not Ticket.objects.get(pk=own.pk).is_deleted
    assert Ticket.objects.filter(title="Mine").count() == 1
    assert Category.objects.filter(pk=in_use.pk).exists()


def test_an_agent_deletes_a_category_no_ticket_uses_and_is_refused_one_in_use(client_for, agent):
    unused, in_use = CategoryFactory(), CategoryFactory(name="Busy")
    TicketFactory(category=in_use)
    operations = [
        {"method": "DELETE", "resource_type": "categories", "id": unused.pk},
        {"method": "DELETE", "resource_type": "categories", "id": in_use.pk},
        {"method": "POST", "resource_type": "categories", "data": {"name": "Busy"}},
    ]

    results = run(client_for(agent), operations).json()["results"]

    assert [r["status"] for r in results] == [204, 409, 400]
    assert results[2]["error"]["code"] == "VALIDATION_ERROR"
    assert results[2]["error"]["message"].startswith("name: ")
    assert list(Category.objects.values_list("name", flat=True)) == ["Busy"]


def test_an_atomic_batch_applies_everything(client_for, agent):
    ticket = TicketFactory()
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"priority": "high"}},
        {"method": "POST", "resource_type": "categories", "data": {"name": "New"}},
    ]

    response = run(client_for(agent), operations, atomic=True)

    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert Ticket.objects.get().priority == "high" and Category.objects.filter(name="New").exists()
    assert BulkOperation.objects.get().mode == "atomic"


def test_an_atomic_batch_that_fails_applies_nothing(client_for, agent):
    ticket, closed = TicketFactory(), TicketFactory(status="closed")
    metric = MetricFactory(owner=agent)
    before = snapshot()
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"status": "resolved"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "Created then undone"}},
        {"method": "POST", "resource_type": "categories", "data": {"name": "Undone"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(metric.pk), "data": {"verification": "verified"}},
        {"method": "PATCH", "resource_type": "tickets", "id": closed.pk, "data": {"status": "open"}},
        {"method": "DELETE", "resource_type": "tickets", "id": ticket.pk},
    ]

    response = run(client_for(agent), operations, atomic=True)

    assert response.status_code == 422
    answer = response.json()
    assert [r.get("error") for r in answer["results"]] == [
        ROLLED_BACK,
        ROLLED_BACK,
        ROLLED_BACK,
        ROLLED_BACK,
        {
            "code": "INVALID_TRANSITION",
            "message": "Cannot change status from closed to open",
            "type": "validation_error",
        },
        ROLLED_BACK,
    ]
    assert [r["status"] for r in answer["results"]] == [409, 409, 409, 409, 400, 409]
    assert (answer["status"], answer["summary"]["completed"], answer["summary"]["failed"]) == ("failed", 0, 6)
    assert snapshot() == before


def test_a_metric_name_its_owner_uses_is_refused_as_the_single_endpoints_refuse_it(client_for, agent):
    MetricFactory(owner=agent, name="Churn")
    revenue = MetricFactory(owner=agent, name="Revenue")
    operations = [
        {"method": "POST", "resource_type": "metrics", "data": {"name": "Churn"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(revenue.pk), "data": {"name": "Churn"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(revenue.pk), "data": {"name": "Revenue",
                                                                                        "description": "kept"}},
    ]  # fmt: skip
    answer = run(client_for(agent), operations).json()
    taken = {"code": "VALIDATION_ERROR", "message": "name: You already own a metric with this name.",
             "type": "validation_error"}  # fmt: skip
    assert [r["status"] for r in answer["results"]] == [400, 400, 200]
    assert [r.get("error") for r in answer["results"]] == [taken, taken, None]
    assert sorted(Metric.objects.values_list("name", "description")) == [("Churn", ""), ("Revenue", "kept")]


def test_the_batch_is_a_bulk_operation_in_the_history(client_for, agent):
    ticket, metric = TicketFactory(), MetricFactory(owner=agent)
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"priority": "low"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "New"}},
        {"method": "PATCH", "resource_type": "metrics", "id": str(metric.pk), "data": {"name": "Renamed"}},
        {"method": "DELETE", "resource_type": "tickets", "id": 999_999},
    ]
    batch_id = run(client_for(agent), operations).json()["batch_id"]

    status = client_for(agent).get(f"/api/v1/bulk-operations/{batch_id}/").json()
    items = client_for(agent).get(f"/api/v1/bulk-operations/{batch_id}/items/").json()["items"]
    history = client_for(agent).get("/api/v1/bulk-operations/", {"resource_type": "mixed"}).json()

    assert (status["resource_type"], status["operation_type"], status["execution"], status["mode"]) == (
        "mixed",
        "batch",
        "sync",
        "partial",
    )
    assert (status["status"], status["successful_items"], status["failed_items"]) == ("partial", 3, 1)
    assert [(i["item_id"], i["status"]) for i in items] == [
        (f"tickets:{ticket.pk}", "succeeded"),
        ("tickets:new", "succeeded"),
        (f"metrics:{metric.pk}", "succeeded"),
        ("tickets:999999", "failed"),
    ]
    assert [op["operation_id"] for op in history["operations"]] == [batch_id]
    assert client_for(UserFactory()).get(f"/api/v1/bulk-operations/{batch_id}/").status_code == 404


def test_a_database_refusal_fails_its_operation_only(client_for, agent):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_title() RETURNS trigger AS $$ BEGIN "
            "IF NEW.title = 'forbidden' THEN RAISE EXCEPTION 'no such title' USING ERRCODE = 'check_violation'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql;"
            "CREATE TRIGGER refuse_title BEFORE INSERT OR UPDATE ON tickets_ticket "
            "FOR EACH ROW EXECUTE FUNCTION refuse_title();"
        )
    ticket = TicketFactory()
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"title": "forbidden"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "forbidden"}},
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"title": "allowed"}},
    ]

    results = run(client_for(agent), operations).json()["results"]

    assert [r["status"] for r in results] == [400, 400, 200]
    assert results[0]["error"] == {"code": "VALIDATION_ERROR", "message": "no such title", "type": "validation_error"}
    assert list(Ticket.objects.values_list("title", "version")) == [("allowed", 2)]


def test_a_duplicate_the_database_refuses_is_a_409_conflict_for_that_call_only(client_for, agent):
    with connection.cursor() as cursor:
        cursor.execute("CREATE UNIQUE INDEX test_unique_ticket_title ON tickets_ticket (title)")
    ticket = TicketFactory(title="Mine")
    TicketFactory(title="Taken")
    operations = [
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"title": "Taken"}},
        {"method": "POST", "resource_type": "tickets", "data": {"title": "Taken"}},
        {"method": "PATCH", "resource_type": "tickets", "id": ticket.pk, "data": {"title": "Renamed"}},
    ]

    results = run(client_for(agent), operations).json()["results"]

    assert [r["status"] for r in results] == [409, 409, 200]
    assert [(r["error"]["code"], r["error"]["type"]) for r in results[:2]] == [("CONFLICT", "conflict_error")] * 2
    assert "test_unique_ticket_title" in results[0]["error"]["message"]
    assert sorted(Ticket.objects.values_list("title", "version")) == [("Renamed", 2), ("Taken", 1)]


def test_a_replayed_idempotency_key_answers_the_same_batch_once(client_for, agent):
    client = client_for(agent)
    operations = [{"method": "POST", "resource_type": "tickets", "data": {"title": "Once"}}]

    first = client.post(URL, {"operations": operations}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = client.post(URL, {"operations": operations}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = client.post(URL, {"operations": operations, "atomic": True}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert Ticket.objects.filter(title="Once").count() == 1
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize("key", ["k" * 256, "k\x00"])
def test_an_idempotency_key_the_column_cannot_store_is_refused(client_for, agent, key):
    TicketFactory(pk=1)
    response = client_for(agent).post(URL, {"operations": [PATCH_1]}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("Idempotency-Key: ")
    assert not BulkOperation.objects.exists()


def element_error(message, index, rest):
    """The message locates the entry: "operations: [3] method: …"."""
    return message == f"operations: [{index}] {rest}"


# config.exceptions.first_message drops where a nested non_field_errors is ("operations: ").
PATCH_1 = {"method": "PATCH", "resource_type": "tickets", "id": 1, "data": {"title": "x"}}


@pytest.mark.parametrize(
    ("body", "index", "message"),
    [
        ([PATCH_1], None, "Invalid data. Expected a dictionary, but got list."),
        ({}, None, "operations: This field is required."),
        pytest.param({"operations": []}, None, "operations: This list may not be empty."),
        pytest.param(
            {"operations": [PATCH_1] * 51},
            None,
            "operations: Ensure this field has no more than 50 elements.",
        ),
        ({"operations": [PATCH_1], "operation_type": "x"}, None, "operation_type: Unknown field."),
        ({"operations": [PATCH_1, {**PATCH_1, "method": "GET"}]}, 1, 'method: "GET" is not a valid choice.'),
        ({"operations": [{**PATCH_1, "resource_type": "users"}]}, 0, 'resource_type: "users" is not a valid choice.'),
        (
            {"operations": [{"method": "DELETE", "resource_type": "metrics", "id": str(uuid.uuid4())}]},
            0,
            "method: metrics take POST, PATCH, not DELETE.",
        ),
        (
            {"operations": [{"method": "PATCH", "resource_type": "tickets", "data": {}}]},
            0,
            "id: PATCH needs the record's id.",
        ),
        (
            {"operations": [{"method": "POST", "resource_type": "tickets", "id": 1, "data": {}}]},
            0,
            "id: POST creates a record: give no id.",
        ),
        ({"operations": [{**PATCH_1, "id": "abc"}]}, 0, "id: 'abc' is not a valid tickets id."),
        ({"operations": [{**PATCH_1, "id": True}]}, 0, "id: True is not a valid tickets id."),
        ({"operations": [{**PATCH_1, "id": 2**70}]}, 0, f"id: {2**70} is not a valid tickets id."),
        ({"operations": [{**PATCH_1, "resource_type": "metrics", "id": 5}]}, 0, "id: 5 is not a valid metrics id."),
        ({"operations": [{**PATCH_1, "resource_type": "metrics", "id": "nope"}]}, 0, "id: Must be a valid UUID."),
        (
            {"operations": [{**PATCH_1, "data": ["title"]}]},
            0,
            'data: Expected a dictionary of items but got type "list".',
        ),
        (
            {"operations": [{"method": "DELETE", "resource_type": "tickets", "id": 1, "data": {"x": 1}}]},
            0,
            "data: DELETE takes no data.",
        ),
        ({"operations": [{**PATCH_1, "when": "now"}]}, 0, "when: Unknown field."),
        ({"operations": [{**PATCH_1, "ref": "r" * 101}]}, 0, "ref: Ensure this field has no more than 100 characters."),
        ({"operations": [PATCH_1], "atomic": "perhaps"}, None, "atomic: Must be a valid boolean."),
        ({"operations": [PATCH_1], "atomic": "true"}, None, "atomic: Must be a valid boolean."),
        ({"operations": [{**PATCH_1, "id": "1"}]}, 0, "id: '1' is not a valid tickets id."),
        (
            {"operations": [PATCH_1, {"method": "POST", "resource_type": "tickets", "data": {"title": "a\x00"}}]},
            None,
            "operations[1].data.title: Text cannot contain NUL (\\u0000) characters.",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_entry_and_nothing_is_stored(client_for, agent, body, index, message):
    TicketFactory(pk=1, title="Kept")
    before = snapshot()

    response = client_for(agent).post(URL, body, format="json")

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == message if index is None else element_error(error["message"], index, message), error
    assert snapshot() == before
    assert not BulkOperation.objects.exists()


def test_anonymous_requests_are_refused(client_for):
    assert client_for(None).post(URL, {"operations": [PATCH_1]}, format="json").status_code == 401


def test_it_is_throttled_per_user(client_for, agent, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "bulk", "1/min")
    operations = [{"method": "POST", "resource_type": "categories", "data": {"name": "One"}}]

    assert run(client_for(agent), operations).status_code == 200
    throttled = run(client_for(agent), operations)

    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert Category.objects.count() == 1


def test_bulkops_never_imports_a_domain_app():
    root = Path(registry.__file__).parent
    imported = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert not imported & {"tickets", "metrics"}


def test_each_domain_app_registered_its_batch_resources():
    assert registry.batch_resources() == ["categories", "metrics", "tickets"]


# --- POST /api/v1/batch/get/ -----------------------------------------------------------------


def get_many(client, body):
    return client.post(GET_URL, body, format="json")


def test_batch_get_answers_in_request_order_with_missing_and_invisible_ids_as_404(client_for):
    requester = UserFactory()
    own, other_own = TicketFactory(requester=requester), TicketFactory(requester=requester)
    invisible = TicketFactory()

    response = get_many(
        client_for(requester), {"resource_type": "tickets", "ids": [other_own.pk, invisible.pk, 999_999, own.pk]}
    )

    assert response.status_code == 200
    answer = response.json()
    assert answer["results"] == [
        {"id": other_own.pk, "status": "success", "data": ticket_data(other_own.pk), "error": None, "status_code": 200},
        {
            "id": invisible.pk,
            "status": "error",
            "data": None,
            "error": {"code": "NOT_FOUND", "message": f"Ticket {invisible.pk} not found", "type": "not_found_error"},
            "status_code": 404,
        },
        {
            "id": 999_999,
            "status": "error",
            "data": None,
            "error": {"code": "NOT_FOUND", "message": "Ticket 999999 not found", "type": "not_found_error"},
            "status_code": 404,
        },
        {"id": own.pk, "status": "success", "data": ticket_data(own.pk), "error": None, "status_code": 200},
    ]
    assert (answer["total_requested"], answer["total_succeeded"], answer["total_failed"]) == (4, 2, 2)
    assert answer["processed_at"]
    assert not BulkOperation.objects.exists()


def test_batch_get_returns_only_the_fields_asked_for(client_for, agent):
    ticket = TicketFactory(status="pending")

    response = get_many(client_for(agent), {"resource_type": "tickets", "ids": [ticket.pk], "fields": ["id", "status"]})

    assert response.json()["results"][0]["data"] == {"id": ticket.pk, "status": "pending"}


def test_batch_get_shows_metrics_and_categories_as_their_single_get(client_for, user):
    metric, viewable, hidden = (
        MetricFactory(owner=user),
        MetricPermissionFactory(user=user, role="can_view").metric,
        MetricFactory(),
    )
    category = CategoryFactory()
    client = client_for(user)

    metrics = get_many(client, {"resource_type": "metrics", "ids": [str(viewable.pk), str(hidden.pk), str(metric.pk)]})
    categories = get_many(client, {"resource_type": "categories", "ids": [category.pk], "fields": ["name"]})

    assert [r["status_code"] for r in metrics.json()["results"]] == [200, 404, 200]
    assert metrics.json()["results"][0]["id"] == str(viewable.pk)
    assert metrics.json()["results"][0]["data"] == client.get(f"/api/v1/metrics/{viewable.pk}/").json()
    assert metrics.json()["results"][2]["data"]["role"] == "owner"
    assert categories.json()["results"][0]["data"] == {"name": category.name}


def test_batch_get_shows_staff_a_deleted_ticket_and_hides_it_from_agents(client_for):
    ticket = TicketFactory(is_deleted=True)
    body = {"resource_type": "tickets", "ids": [ticket.pk], "fields": ["is_deleted"]}

    assert get_many(client_for(StaffFactory()), body).json()["results"][0]["data"] == {"is_deleted": True}
    assert get_many(client_for(AgentFactory()), body).json()["results"][0]["status_code"] == 404


def test_batch_get_takes_the_same_number_of_queries_for_one_id_or_a_hundred(
    client_for, agent, django_assert_max_num_queries
):
    tickets = TicketFactory.create_batch(100)
    client = client_for(agent)
    get_many(client, {"resource_type": "tickets", "ids": [tickets[0].pk]})  # the token is looked up once warm

    with CaptureQueriesContext(connection) as one:
        get_many(client, {"resource_type": "tickets", "ids": [tickets[0].pk]})
    with django_assert_max_num_queries(len(one)):
        response = get_many(client, {"resource_type": "tickets", "ids": [t.pk for t in tickets]})

    assert response.json()["total_succeeded"] == 100
    metrics = MetricFactory.create_batch(100, owner=agent)
    with CaptureQueriesContext(connection) as one_metric:
        get_many(client, {"resource_type": "metrics", "ids": [str(metrics[0].pk)]})
    with django_assert_max_num_queries(len(one_metric)):
        get_many(client, {"resource_type": "metrics", "ids": [str(m.pk) for m in metrics]})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"resource_type": "users", "ids": [1]}, 'resource_type: "users" is not a valid choice.'),
        ({"resource_type": "tickets"}, "ids: This field is required."),
        ({"resource_type": "tickets", "ids": []}, "ids: This list may not be empty."),
        (
            {"resource_type": "tickets", "ids": list(range(1, 102))},
            "ids: Ensure this field has no more than 100 elements.",
        ),
        ({"resource_type": "tickets", "ids": [1, 2, 1]}, "ids: [2] duplicate id 1 (first at [0])."),
        ({"resource_type": "tickets", "ids": [1, "2"]}, "ids: [1] '2' is not a valid id: expected an integer."),
        ({"resource_type": "metrics", "ids": ["nope"]}, "ids: [0] 'nope': Must be a valid UUID."),
        (
            {"resource_type": "tickets", "ids": [1], "fields": ["id", "secret"]},
            "fields: Unknown field(s): secret; one of: ",
        ),
        ({"resource_type": "tickets", "ids": [1], "fields": []}, "fields: This list may not be empty."),
        ({"resource_type": "tickets", "ids": [1], "limit": 5}, "limit: Unknown field."),
    ],
)
def test_batch_get_refuses_bad_input(client_for, agent, body, message):
    response = get_many(client_for(agent), body)

    assert response.status_code == 400, response.json()
    assert response.json()["error"]["message"].startswith(message)


def test_both_batch_endpoints_are_in_the_openapi_schema(client_for, agent):
    schema = client_for(agent).get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]

    def component(operation, status=None):
        content = operation["responses"][status] if status else operation["requestBody"]
        return components[content["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]

    post, get = schema["paths"]["/api/v1/batch/"]["post"], schema["paths"]["/api/v1/batch/get/"]["post"]
    assert set(component(post)["properties"]) == {"atomic", "operations"}
    assert set(component(post, "200")["properties"]) == {
        "batch_id",
        "status",
        "total_operations",
        "results",
        "summary",
        "created_at",
        "completed_at",
    }
    assert set(component(post, "422")["properties"]) == set(component(post, "200")["properties"])
    assert set(component(get)["properties"]) == {"resource_type", "ids", "fields"}
    assert set(component(get, "200")["properties"]) == {
        "results",
        "total_requested",
        "total_succeeded",
        "total_failed",
        "processed_at",
    }
