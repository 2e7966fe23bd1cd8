"""The metric bulk operations leave the audit trail a single change leaves (SPEC §11)."""

import pytest

from bulkops.models import BulkOperation
from metrics.models import MetricEvent

from ..bulkops.helpers import work_off
from ..factories import MetricFactory, MetricPermissionFactory, UserFactory

OPERATIONS = "/api/v1/metrics/bulk-operations/"


@pytest.mark.django_db(transaction=True)
def test_set_verification_on_a_worker_writes_one_event_per_changed_metric_with_the_operation_and_reason(client_for):
    user = UserFactory()
    changed = MetricFactory.create_batch(2, owner=user, verification="requested")
    already = MetricFactory(owner=user, verification="verified")
    viewable = MetricPermissionFactory(user=user, role="can_view").metric
    body = {
        "metric_ids": [str(m.pk) for m in [*changed, already, viewable]],
        "operation_type": "set_verification",
        "operation_data": {"verification": "verified"},
        "metadata": {"description": "Audit Q3"},
        "batch_size": 2,
    }
    response = client_for(user).post(OPERATIONS, body, format="json")
    assert response.status_code == 202, response.json()
    work_off()
    op = BulkOperation.objects.get()
    assert (op.status, op.successful_items, op.failed_items) == ("partial", 3, 1)
    events = MetricEvent.objects.order_by("metric_id")
    assert list(events.values_list("metric_id", "field", "old_value", "new_value", "actor", "bulk_operation", "reason")) == [
        (m.pk, "verification", "requested", "verified", user.pk, op.pk, "Audit Q3")
        for m in sorted(changed, key=lambda m: m.pk)
    ]  # fmt: skip


@pytest.mark.django_db
def test_the_verification_collection_put_writes_the_events_of_its_operation(client_for):
    user = UserFactory()
    metric = MetricFactory(owner=user)
    body = {"updates": [{"id": str(metric.pk), "verification": "in_review"}]}
    operation_id = client_for(user).put("/api/v1/metrics/", body, format="json").json()["operation_id"]
    event = MetricEvent.objects.get()
    assert (event.metric, event.new_value, str(event.bulk_operation_id), event.actor) == (
        metric, "in_review", operation_id, user,
    )  # fmt: skip


@pytest.mark.django_db
def test_a_batch_patch_of_a_metric_is_audited(client_for):
    user = UserFactory()
    metric = MetricFactory(owner=user)
    step = {"method": "PATCH", "resource_type": "metrics", "id": str(metric.pk), "data": {"name": "Churn"}}
    response = client_for(user).post("/api/v1/batch/", {"operations": [step]}, format="json")
    assert response.status_code == 200, response.json()
    event = MetricEvent.objects.get()
    assert (event.field, event.new_value, event.bulk_operation_id) == ("name", "Churn", BulkOperation.objects.get().pk)
