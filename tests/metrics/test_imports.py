"""Metric imports (SPEC §12): matched on `name` among the caller's own, or on `id`."""

import uuid

import pytest

from metrics.models import Metric, MetricPermission, Role

from ..bulkops.helpers import work_off
from ..factories import MetricFactory, UserFactory

URL = "/api/v1/metrics/imports/"


def run(client, body):
    response = client.post(URL, body, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    links = response.json()["links"]
    return client.get(links["self"]).json(), client.get(links["items"]).json()["items"]


@pytest.mark.django_db(transaction=True)
def test_an_upsert_by_name_matches_only_the_callers_own_metrics(client_for):
    me, other = UserFactory(), UserFactory()
    mine = MetricFactory(owner=me, name="Revenue", description="old")
    theirs = MetricFactory(owner=other, name="Churn")
    rows = [
        {"name": "Revenue", "description": "new", "verification": "requested"},
        {"name": "Churn", "definition": "lost / total"},
        {"name": "Bad", "verification": "approved"},
    ]
    status, items = run(client_for(me), {"rows": rows, "match_on": "name"})
    assert (status["status"], status["created_items"], status["updated_items"]) == ("partial", 1, 1)
    mine.refresh_from_db()
    assert (mine.description, mine.verification, mine.version) == ("new", "requested", 2)
    churn = Metric.objects.get(owner=me, name="Churn")  # their Churn is not mine: a new one of my own
    assert (churn.definition, theirs.pk != churn.pk) == ("lost / total", True)
    assert items[1]["item_id"] == str(churn.pk)
    assert (items[2]["error_code"], list(items[2]["result"]["error_details"])) == ("VALIDATION_ERROR", ["verification"])


@pytest.mark.django_db(transaction=True)
def test_by_id_a_metric_not_shared_is_not_found_and_a_view_only_one_is_denied(client_for):
    me, other = UserFactory(), UserFactory()
    hidden = MetricFactory(owner=other)
    viewable = MetricFactory(owner=other)
    MetricPermission.objects.create(metric=viewable, user=me, role=Role.CAN_VIEW)
    rows = [{"id": str(hidden.pk), "name": "x"}, {"id": str(viewable.pk), "name": "y"}, {"id": "nope", "name": "z"}]
    _, items = run(client_for(me), {"rows": rows, "action": "update"})
    assert [i["error_code"] for i in items] == ["NOT_FOUND", "PERMISSION_DENIED", "VALIDATION_ERROR"]
    _, items = run(client_for(me), {"rows": [{"id": str(hidden.pk), "name": "x"}], "action": "upsert"})
    assert [i["error_code"] for i in items] == ["CONFLICT"]
    assert Metric.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_revert_deletes_the_metrics_the_import_created_and_restores_the_updated_ones(client_for):
    me = UserFactory()
    client = client_for(me)
    old = MetricFactory(owner=me, name="Revenue", description="old")
    status, _ = run(
        client, {"rows": [{"name": "Revenue", "description": "new"}, {"name": "Churn"}], "match_on": "name"}
    )
    response = client.post(f"/api/v1/bulk-operations/{status['operation_id']}/revert/", {}, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    assert client.get(response.json()["links"]["self"]).json()["status"] == "completed"
    old.refresh_from_db()
    assert (old.description, list(Metric.objects.values_list("name", flat=True))) == ("old", ["Revenue"])


@pytest.mark.django_db(transaction=True)
def test_a_row_that_would_give_an_owner_a_second_metric_of_a_name_fails_that_row_only(client_for):
    me = UserFactory()
    MetricFactory(owner=me, name="Churn")
    revenue = MetricFactory(owner=me, name="Revenue")
    margin = MetricFactory(owner=me, name="Margin")
    rows = [
        {"name": "Churn", "definition": "lost / total"},  # a new metric, by a name I own
        {"id": str(revenue.pk), "name": "Churn"},  # a rename onto it
        {"id": str(margin.pk), "name": "Margin", "description": "kept"},  # its own name
        {"name": "Active users"},
    ]
    status, items = run(client_for(me), {"rows": rows})
    assert (status["status"], status["created_items"], status["updated_items"]) == ("partial", 1, 1)
    taken = ("failed", "VALIDATION_ERROR", "name: You already own a metric with this name.")
    assert [(i["status"], i["error_code"], i["error_message"]) for i in items[:2]] == [taken, taken]
    assert [i["result"]["error_details"] for i in items[:2]] == [
        {"name": ["You already own a metric with this name."]}
    ] * 2
    assert [i["status"] for i in items[2:]] == ["succeeded", "succeeded"]
    assert sorted(Metric.objects.values_list("name", flat=True)) == ["Active users", "Churn", "Margin", "Revenue"]
    assert Metric.objects.get(pk=margin.pk).description == "kept"


@pytest.mark.django_db(transaction=True)
def test_a_create_by_name_of_a_metric_the_caller_owns_is_a_conflict(client_for):
    me = UserFactory()
    churn = MetricFactory(owner=me, name="Churn", description="mine")
    MetricFactory(name="Revenue")  # another owner's: no conflict of mine
    rows = [{"name": "Churn", "description": "new"}, {"name": "Revenue"}]
    status, items = run(client_for(me), {"rows": rows, "action": "create", "match_on": "name"})
    assert (status["status"], status["created_items"]) == ("partial", 1)
    assert (items[0]["error_code"], items[0]["error_message"]) == (
        "CONFLICT",
        "A metric with name Churn exists already",
    )
    assert (items[1]["status"], Metric.objects.get(pk=items[1]["item_id"]).owner) == ("succeeded", me)
    assert Metric.objects.get(pk=churn.pk).description == "mine"


@pytest.mark.django_db(transaction=True)
def test_two_new_rows_of_one_name_in_a_file_make_one_metric(client_for):
    # Matched on id, neither row names a metric: both find the name free, the database takes
    # the first, and the chunk redone row by row refuses the second as the single POST would.
    me = UserFactory()
    rows = [{"name": "Churn", "description": "first"}, {"name": "Revenue"}, {"name": "Churn", "description": "second"}]
    status, items = run(client_for(me), {"rows": rows})
    assert (status["status"], status["created_items"], status["failed_items"]) == ("partial", 2, 1)
    assert [i["status"] for i in items] == ["succeeded", "succeeded", "failed"]
    assert (items[2]["error_code"], items[2]["result"]["error_details"]) == (
        "VALIDATION_ERROR",
        {"name": ["You already own a metric with this name."]},
    )
    assert sorted(Metric.objects.values_list("name", "description")) == [("Churn", "first"), ("Revenue", "")]


@pytest.mark.django_db(transaction=True)
def test_a_revert_that_would_restore_a_name_the_owner_gave_another_metric_since_is_a_conflict(client_for):
    me = UserFactory()
    client = client_for(me)
    churn = MetricFactory(owner=me, name="Churn")
    status, _ = run(client, {"rows": [{"id": str(churn.pk), "name": "Churn (old)"}]})
    newer = client.post("/api/v1/metrics/", {"name": "Churn"}, format="json").json()
    response = client.post(f"/api/v1/bulk-operations/{status['operation_id']}/revert/", {}, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    items = client.get(response.json()["links"]["items"]).json()["items"]
    assert (items[0]["error_code"], items[0]["error_message"]) == (
        "CONFLICT",
        f"Metric {churn.pk}: its owner has another metric named 'Churn' now",
    )
    assert dict(Metric.objects.values_list("name", "pk")) == {"Churn (old)": churn.pk, "Churn": uuid.UUID(newer["id"])}
