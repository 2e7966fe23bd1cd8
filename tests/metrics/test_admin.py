"""The "Set verification…" action on the Metric changelist."""

import pytest

from bulkops.models import BulkOperation
from metrics.models import Metric, MetricEvent, MetricPermission

from ..factories import MetricFactory, MetricPermissionFactory, UserFactory

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


# --- the change and add pages go through metrics.services ------------------------------------


def change_page(metric):
    return f"{CHANGELIST}{metric.pk}/change/"


def form_of(metric, rows=(), **changes):
    """What the change page posts back: the metric's values with `changes`, and the share rows
    `rows` — (permission or None, user, role, delete) — of the inline."""
    data = {
        "name": metric.name,
        "description": metric.description,
        "definition": metric.definition,
        "verification": metric.verification,
        "owner": metric.owner_id,  # shown read-only: posted back, ignored
        "version": metric.version,
        **changes,
        "permissions-TOTAL_FORMS": len(rows),
        "permissions-INITIAL_FORMS": sum(1 for permission, *_ in rows if permission),
        "permissions-MIN_NUM_FORMS": 0,
        "permissions-MAX_NUM_FORMS": 1000,
    }
    for n, (permission, user, role, delete) in enumerate(rows):
        row = {"id": permission.pk if permission else "", "metric": metric.pk, "user": user.pk, "role": role}
        data.update({f"permissions-{n}-{key}": value for key, value in row.items()})
        if delete:
            data[f"permissions-{n}-DELETE"] = "on"
    return data


def test_a_change_page_edit_bumps_the_version_and_writes_a_metric_event(admin_client, staff):
    metric = MetricFactory()
    response = admin_client.post(change_page(metric), form_of(metric, verification="verified"))
    assert response.status_code == 302
    metric.refresh_from_db()
    assert (metric.verification, metric.version) == ("verified", 2)
    event = MetricEvent.objects.get()
    assert (event.metric, event.field, event.old_value, event.new_value) == (metric, "verification",
                                                                              "not_requested", "verified")  # fmt: skip
    assert (event.actor, event.bulk_operation, event.reason) == (staff, None, "")


def test_saving_the_change_page_unchanged_changes_nothing(admin_client):
    metric = MetricFactory()
    assert admin_client.post(change_page(metric), form_of(metric)).status_code == 302
    metric.refresh_from_db()
    assert metric.version == 1
    assert not MetricEvent.objects.exists()


def test_the_owner_of_a_metric_is_not_edited_on_its_page(admin_client):
    metric = MetricFactory()
    admin_client.post(change_page(metric), form_of(metric, owner=UserFactory().pk))
    assert Metric.objects.get().owner == metric.owner


def test_the_add_page_creates_a_metric_owned_by_the_staff_user(admin_client, staff):
    response = admin_client.post(f"{CHANGELIST}add/", {"name": "Churn", "verification": "requested"})
    metric = Metric.objects.get()
    assert response.status_code == 302
    assert (metric.name, metric.verification, metric.owner, metric.version) == ("Churn", "requested", staff, 1)


def test_the_add_page_refuses_a_name_the_staff_user_owns_already(admin_client, staff):
    MetricFactory(owner=staff, name="Churn")
    response = admin_client.post(f"{CHANGELIST}add/", {"name": "Churn", "verification": "requested"})
    assert response.status_code == 200
    assert "You already own a metric with this name." in response.content.decode()
    assert Metric.objects.count() == 1


def test_the_change_page_refuses_a_name_the_owner_uses_on_another_metric(admin_client):
    metric = MetricFactory(name="Revenue")
    MetricFactory(owner=metric.owner, name="Churn")
    response = admin_client.post(change_page(metric), form_of(metric, name="Churn", verification="verified"))
    assert response.status_code == 200
    assert "The owner of this metric already has a metric with this name." in response.content.decode()
    metric.refresh_from_db()
    assert (metric.name, metric.verification, metric.version) == ("Revenue", "not_requested", 1)
    assert not MetricEvent.objects.exists()


def test_metrics_are_not_deleted_in_the_admin(admin_client):
    metric = MetricFactory()
    assert admin_client.post(f"{CHANGELIST}{metric.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get(CHANGELIST).content.decode()
    assert Metric.objects.filter(pk=metric.pk).exists()


# --- the sharing inline goes through services.share's rules, audited --------------------------


def test_sharing_on_the_metric_page_is_audited(admin_client, staff):
    metric, user = MetricFactory(), UserFactory()
    response = admin_client.post(change_page(metric), form_of(metric, [(None, user, "can_edit", False)]))
    assert response.status_code == 302
    assert MetricPermission.objects.values_list("metric", "user", "role").get() == (metric.pk, user.pk, "can_edit")
    event = MetricEvent.objects.get()
    assert (event.field, event.old_value, event.new_value, event.actor) == (f"permission:{user.pk}", None,
                                                                            "can_edit", staff)  # fmt: skip
    assert Metric.objects.get().version == 1  # sharing is not a change of the metric itself


def test_changing_and_taking_back_shares_on_the_metric_page_is_audited(admin_client):
    metric = MetricFactory()
    changed, removed = MetricPermissionFactory(metric=metric), MetricPermissionFactory(metric=metric)
    rows = [(changed, changed.user, "can_view", False), (removed, removed.user, "can_edit", True)]
    assert admin_client.post(change_page(metric), form_of(metric, rows)).status_code == 302
    assert list(MetricPermission.objects.values_list("user", "role")) == [(changed.user_id, "can_view")]
    assert set(MetricEvent.objects.values_list("field", "old_value", "new_value")) == {
        (f"permission:{changed.user_id}", "can_edit", "can_view"),
        (f"permission:{removed.user_id}", "can_edit", None),
    }


def test_moving_a_share_to_another_user_takes_it_back_from_the_first(admin_client):
    metric = MetricFactory()
    permission, other = MetricPermissionFactory(metric=metric), UserFactory()
    admin_client.post(change_page(metric), form_of(metric, [(permission, other, "can_edit", False)]))
    assert list(MetricPermission.objects.values_list("user", "role")) == [(other.pk, "can_edit")]
    assert set(MetricEvent.objects.values_list("field", "old_value", "new_value")) == {
        (f"permission:{permission.user_id}", "can_edit", None),
        (f"permission:{other.pk}", None, "can_edit"),
    }


@pytest.mark.parametrize(
    ("role", "owner", "message"),
    [
        ("can_view", True, "The owner already holds every role on this metric"),
        ("owner", False, "The owner role cannot be shared"),
    ],
)
def test_a_share_the_service_refuses_is_a_form_error_and_nothing_is_saved(admin_client, role, owner, message):
    metric = MetricFactory()
    user = metric.owner if owner else UserFactory()
    data = form_of(metric, [(None, user, role, False)], verification="verified")
    response = admin_client.post(change_page(metric), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    metric.refresh_from_db()
    assert (metric.verification, metric.version) == ("not_requested", 1)
    assert not MetricPermission.objects.exists()
    assert not MetricEvent.objects.exists()


# --- audit rows and shares are read-only on their own pages -----------------------------------


def test_metric_events_cannot_be_added_changed_or_deleted_in_the_admin(admin_client):
    metric = MetricFactory()
    admin_client.post(change_page(metric), form_of(metric, name="Renamed"))
    event = MetricEvent.objects.get()
    assert admin_client.get("/admin/metrics/metricevent/add/").status_code == 403
    page = f"/admin/metrics/metricevent/{event.pk}/change/"
    assert admin_client.get(page).status_code == 200
    assert 'name="new_value"' not in admin_client.get(page).content.decode()
    assert admin_client.post(page, {"metric": metric.pk, "field": "name", "new_value": "forged"}).status_code == 403
    assert admin_client.post(f"/admin/metrics/metricevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert "delete_selected" not in admin_client.get("/admin/metrics/metricevent/").content.decode()
    assert MetricEvent.objects.values_list("field", "new_value").get() == ("name", "Renamed")


def test_shares_are_only_viewed_on_their_own_admin_page(admin_client):
    permission = MetricPermissionFactory()
    assert admin_client.get("/admin/metrics/metricpermission/add/").status_code == 403
    page = f"/admin/metrics/metricpermission/{permission.pk}/change/"
    assert admin_client.post(page, {"metric": permission.metric_id, "user": permission.user_id,
                                    "role": "full_access"}).status_code == 403  # fmt: skip
    assert (
        admin_client.post(f"/admin/metrics/metricpermission/{permission.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert MetricPermission.objects.values_list("role", flat=True).get() == "can_edit"


def test_a_row_marked_for_deletion_is_taken_back_even_with_a_blanked_role(admin_client):
    metric = MetricFactory()
    permission = MetricPermissionFactory(metric=metric)
    response = admin_client.post(change_page(metric), form_of(metric, [(permission, permission.user, "", True)]))
    assert response.status_code == 302
    assert not MetricPermission.objects.exists()
    assert MetricEvent.objects.values_list("field", "new_value").get() == (f"permission:{permission.user_id}", None)
