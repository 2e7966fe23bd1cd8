"""PUT /api/v1/metrics/: the verification of many metrics, each update on its own (SPEC §5.3)."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.throttling import ScopedRateThrottle

from bulkops.models import BulkOperation
from metrics.api.serializers import MetricSerializer
from metrics.models import Metric

from ..factories import MetricFactory, MetricPermissionFactory, StaffFactory, UserFactory

URL = "/api/v1/metrics/"
pytestmark = pytest.mark.django_db


def put(client, body):
    return client.put(URL, body, format="json")


def verifications():
    return dict(Metric.objects.values_list("pk", "verification"))


def shown(metric_id, user):
    """The metric as the single GET shows it to `user`."""
    return MetricSerializer(Metric.objects.visible_to(user).get(pk=metric_id)).data


def test_it_sets_every_verification_and_answers_with_the_metrics(client_for, user):
    metrics = MetricFactory.create_batch(3, owner=user)
    body = {"updates": [{"id": str(m.pk), "verification": "verified"} for m in reversed(metrics)], "batch_size": 2}

    response = put(client_for(user), body)

    assert response.status_code == 200, response.json()
    op = BulkOperation.objects.get()
    assert response.json() == {
        "updated_metrics": [shown(m.pk, user) for m in reversed(metrics)],
        "failed_updates": [],
        "total_processed": 3,
        "success_count": 3,
        "failure_count": 0,
        "operation_id": str(op.pk),
    }
    assert set(verifications().values()) == {"verified"}
    assert response.json()["updated_metrics"][0]["version"] == 2
    assert (op.operation_type, op.mode, op.execution, op.batch_size) == ("set_verification_each", "partial", "sync", 2)


def test_each_update_fails_on_its_own_with_its_code(client_for, user):
    owned, editable = MetricFactory(owner=user), MetricPermissionFactory(user=user, role="can_edit").metric
    viewable = MetricPermissionFactory(user=user, role="can_view").metric
    hidden, missing = MetricFactory(), uuid.uuid4()
    bad_value = MetricFactory(owner=user)
    body = {
        "updates": [
            {"id": str(viewable.pk), "verification": "verified"},
            {"id": str(owned.pk), "verification": "in_review"},
            {"id": str(hidden.pk), "verification": "verified"},
            {"id": str(bad_value.pk), "verification": "approved"},
            {"id": str(missing), "verification": "verified"},
            {"id": str(editable.pk), "verification": "backlogged"},
        ]
    }

    response = put(client_for(user), body)

    assert response.status_code == 200
    answer = response.json()
    assert [m["id"] for m in answer["updated_metrics"]] == [str(owned.pk), str(editable.pk)]
    assert answer["failed_updates"] == [
        {
            "metric_id": str(viewable.pk),
            "error": "Insufficient permissions to update metric",
            "error_code": "PERMISSION_DENIED",
        },
        {"metric_id": str(hidden.pk), "error": f"metrics {hidden.pk} not found", "error_code": "NOT_FOUND"},
        {
            "metric_id": str(bad_value.pk),
            "error": 'verification: "approved" is not a valid choice.',
            "error_code": "VALIDATION_ERROR",
        },
        {"metric_id": str(missing), "error": f"metrics {missing} not found", "error_code": "NOT_FOUND"},
    ]
    assert (answer["total_processed"], answer["success_count"], answer["failure_count"]) == (6, 2, 4)
    assert verifications() == {
        owned.pk: "in_review",
        editable.pk: "backlogged",
        viewable.pk: "not_requested",
        hidden.pk: "not_requested",
        bad_value.pk: "not_requested",
    }
    assert BulkOperation.objects.get().status == "partial"


def test_its_statements_do_not_grow_with_the_number_of_updates(client_for, user):
    """The operation is written and read a fixed number of times, whatever its size; the
    items are not read back when every update succeeded."""
    metrics = MetricFactory.create_batch(30, owner=user)
    client = client_for(user)

    def statements(count):
        body = {"updates": [{"id": str(m.pk), "verification": "verified"} for m in metrics[:count]]}
        with CaptureQueriesContext(connection) as queries:
            assert put(client, body).json()["success_count"] == count
        return [q["sql"] for q in queries]

    few, many = statements(3), statements(30)
    assert len(few) == len(many)
    read_back = [sql for sql in many if '"bulkops_bulkoperationitem"."target_id"' in sql and "FOR UPDATE" not in sql]
    assert not read_back  # only the claim reads items one by one


def test_staff_may_set_any_metric(client_for, staff):
    metric = MetricFactory()

    response = put(client_for(staff), {"updates": [{"id": str(metric.pk), "verification": "requested"}]})

    assert response.json()["success_count"] == 1
    assert Metric.objects.get().verification == "requested"


def test_no_updates_change_nothing_answer_zero_counts_and_record_no_operation(client_for, user):
    client = client_for(user)
    for _ in range(2):
        response = put(client, {"updates": []})

        assert response.status_code == 200
        assert response.json() == {
            "updated_metrics": [],
            "failed_updates": [],
            "total_processed": 0,
            "success_count": 0,
            "failure_count": 0,
            "operation_id": None,
        }
    assert not BulkOperation.objects.exists()


def test_a_thousand_updates_are_accepted_in_one_request(client_for, user):
    ids = [str(uuid.uuid4()) for _ in range(1000)]

    response = put(client_for(user), {"updates": [{"id": i, "verification": "verified"} for i in ids]})

    assert response.status_code == 200
    assert response.json()["failure_count"] == 1000
    assert {f["error_code"] for f in response.json()["failed_updates"]} == {"NOT_FOUND"}


def test_it_is_recorded_in_the_history_with_its_items(client_for, user):
    metric = MetricFactory(owner=user)
    missing = uuid.uuid4()
    body = {"updates": [{"id": str(metric.pk), "verification": "verified"}, {"id": str(missing), "verification": "x"}]}
    op_id = put(client_for(user), body).json()["operation_id"]

    history = client_for(user).get("/api/v1/metrics/bulk-operations/").json()
    status = client_for(user).get(f"/api/v1/metrics/bulk-operations/{op_id}/").json()

    assert [op["operation_id"] for op in history["operations"]] == [op_id]
    assert (status["status"], status["execution"], status["successful_items"], status["failed_items"]) == (
        "partial",
        "sync",
        1,
        1,
    )
    assert status["errors"] == [
        {
            "item_id": str(missing),
            "position": 1,
            "error_code": "NOT_FOUND",
            "error_message": f"metrics {missing} not found",
        }
    ]
    assert client_for(UserFactory()).get(f"/api/v1/bulk-operations/{op_id}/").status_code == 404


def test_its_operation_cannot_be_started_through_bulk_operations(client_for, user):
    metric = MetricFactory(owner=user)
    body = {
        "ids": [str(metric.pk)],
        "operation_type": "set_verification_each",
        "operation_data": {"verification": "verified"},
    }

    response = client_for(user).post("/api/v1/metrics/bulk-operations/", body, format="json")

    assert response.status_code == 400
    assert not BulkOperation.objects.exists()


def element_error(message, index, rest):
    """The message locates the update: "updates: [3] id: …"."""
    return message == f"updates: [{index}] {rest}"


GOOD = "00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    ("body", "index", "message"),
    [
        ([], None, "Invalid data. Expected a dictionary, but got list."),
        ({}, None, "updates: This field is required."),
        pytest.param(
            {"updates": {"id": GOOD}},
            None,
            'updates: Expected a list of items but got type "dict".',
        ),
        ({"updates": [], "batch_size": 0}, None, "batch_size: Ensure this value is greater than or equal to 1."),
        ({"updates": [], "batch_size": 1001}, None, "batch_size: Ensure this value is less than or equal to 1000."),
        ({"updates": [], "batch_size": "many"}, None, "batch_size: A valid integer is required."),
        ({"updates": [], "batch_size": "50"}, None, "batch_size: A valid integer is required."),
        ({"updates": [], "verification": "verified"}, None, "verification: Unknown field."),
        ({"updates": [{"verification": "verified"}]}, 0, "id: This field is required."),
        (
            {"updates": [{"id": GOOD, "verification": "verified"}, {"id": "nope", "verification": "verified"}]},
            1,
            "id: Must be a valid UUID.",
        ),
        ({"updates": [{"id": GOOD}]}, 0, "verification: This field is required."),
        ({"updates": [{"id": GOOD, "verification": "verified", "name": "x"}]}, 0, "name: Unknown field."),
        (
            {"updates": [{"id": GOOD, "verification": "verified"}, {"id": GOOD, "verification": "requested"}]},
            None,
            f"updates: [1] duplicate id {GOOD} (first at [0]).",
        ),
    ],
)
def test_bad_input_is_refused_as_a_whole_and_nothing_is_stored(client_for, user, body, index, message):
    metric = MetricFactory(owner=user)

    response = put(client_for(user), body)

    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"] == message if index is None else element_error(error["message"], index, message), error
    assert not BulkOperation.objects.exists()
    assert Metric.objects.get().version == metric.version


def test_a_nul_character_in_a_verification_is_refused_and_nothing_is_stored(client_for, user):
    metric = MetricFactory(owner=user)

    response = put(client_for(user), {"updates": [{"id": str(metric.pk), "verification": "verified\x00"}]})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": "updates[0].verification: Text cannot contain NUL (\\u0000) characters.",
        "details": {"updates[0].verification": ["Text cannot contain NUL (\\u0000) characters."]},
    }
    assert not BulkOperation.objects.exists()
    assert Metric.objects.get().version == metric.version


def test_an_update_that_is_not_an_object_is_refused(client_for, user):
    response = put(client_for(user), {"updates": ["x"]})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "updates": {"0": {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}}
    }
    assert not BulkOperation.objects.exists()


def test_more_than_a_thousand_updates_are_refused(client_for, user):
    updates = [{"id": str(uuid.uuid4()), "verification": "verified"} for _ in range(1001)]

    response = put(client_for(user), {"updates": updates})

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {
        "updates": {"non_field_errors": ["Ensure this field has no more than 1000 elements."]}
    }
    assert not BulkOperation.objects.exists()


def test_it_is_rate_limited_per_user(client_for, user, monkeypatch):
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "metrics_bulk", "2/min")
    client = client_for(user)
    one_update = {"updates": [{"id": str(MetricFactory(owner=user).pk), "verification": "verified"}]}

    assert [put(client, one_update).status_code for _ in range(2)] == [200, 200]
    throttled = put(client, one_update)

    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "THROTTLED"
    assert int(throttled["Retry-After"]) > 0
    assert BulkOperation.objects.count() == 2
    assert client.get(URL).status_code == 200
    assert put(client_for(UserFactory()), {"updates": []}).status_code == 200


def test_the_list_route_still_lists_and_creates(client_for, user):
    client = client_for(user)

    assert client.post(URL, {"name": "Churn"}, format="json").status_code == 201
    assert client.get(URL).json()["count"] == 1
    assert client.patch(URL, [], format="json").status_code == 405


def test_it_is_in_the_openapi_schema(client_for):
    schema = client_for(StaffFactory()).get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/metrics/"]["put"]
    components = schema["components"]["schemas"]
    request = components[operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    response = components[
        operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]
    ]
    assert set(request["properties"]) == {"updates", "batch_size"}
    assert set(response["properties"]) == {
        "updated_metrics",
        "failed_updates",
        "total_processed",
        "success_count",
        "failure_count",
        "operation_id",
    }
    assert "429" in operation["responses"]
