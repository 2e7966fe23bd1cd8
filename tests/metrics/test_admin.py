"""The "Set verification…" action on the Metric changelist."""

import pytest

from bulkops.models import BulkOperation

from ..factories import MetricFactory

CHANGELIST = "/admin/metrics/metric/"

pytestmark = pytest.mark.django_db


def act(client, ids, url=CHANGELIST, select_across=False, **data):
    body = {"action": "bulk_set_verification", "index": 0, "_selected_action": ids, "select_across": int(select_across)}
    return client.post(url, {**body, **data})


def test_the_changelist_offers_set_verification(admin_client):
    MetricFactory()
    content = admin_client.get(CHANGELIST).content.decode()
    assert '<option value="bulk_set_verification">Set verification…</option>' in content


def test_it_shows_an_intermediate_form_with_the_count_and_the_choices(admin_client):
    metrics = MetricFactory.create_batch(2)
    content = act(admin_client, [str(m.pk) for m in metrics]).content.decode()
    assert '<strong id="bulk-count">2 metrics</strong>' in content
    assert '<option value="verified">Verified</option>' in content


def test_it_starts_an_async_operation_over_the_metric_ids(admin_client, staff):
    metrics = MetricFactory.create_batch(2)
    response = act(admin_client, [str(m.pk) for m in metrics], apply="Start", **{"data-verification": "verified"})
    op = BulkOperation.objects.get()
    assert response["Location"] == f"/bulk-operations/{op.pk}/"
    assert (op.user, op.resource_type, op.operation_type) == (staff, "metrics", "set_verification")
    assert op.operation_data == {"verification": "verified"}
    assert sorted(op.items.values_list("target_id", flat=True)) == sorted(str(m.pk) for m in metrics)


def test_select_all_takes_every_metric_the_changelist_filter_matches(admin_client):
    requested = MetricFactory.create_batch(3, verification="requested")
    MetricFactory(verification="verified")
    url = f"{CHANGELIST}?verification__exact=requested"
    act(admin_client, [str(requested[0].pk)], url=url, select_across=True, apply="Start",
        **{"data-verification": "in_review"})  # fmt: skip
    op = BulkOperation.objects.get()
    assert sorted(op.items.values_list("target_id", flat=True)) == sorted(str(m.pk) for m in requested)


def test_a_missing_verification_is_asked_for_again(admin_client):
    response = act(admin_client, [str(MetricFactory().pk)], apply="Start")
    assert "This field is required." in response.content.decode()
    assert not BulkOperation.objects.exists()
