"""/api/v1/metrics/: list, create, retrieve, PATCH, permissions (SPEC §2.2, §5.1)."""

import uuid

import pytest

from metrics.models import Metric, MetricPermission

from ..factories import MetricFactory, MetricPermissionFactory, UserFactory
from ..races import while_uncommitted

pytestmark = pytest.mark.django_db
URL = "/api/v1/metrics/"
METRIC_KEYS = {
    "id", "name", "description", "definition", "verification", "owner", "role", "version", "created_at", "updated_at",
}  # fmt: skip


def url(metric, suffix=""):
    return f"{URL}{metric.pk}/{suffix}"


def holder(role):
    """A metric and a user with `role` on it (None: no role at all)."""
    metric = MetricFactory()
    if role == "owner":
        return metric, metric.owner
    user = UserFactory()
    if role:
        MetricPermissionFactory(metric=metric, user=user, role=role)
    return metric, user


# --- list, retrieve, fields ------------------------------------------------------------------


def test_a_user_lists_the_metrics_they_hold_a_role_on(client_for, user):
    owned = MetricFactory(owner=user, name="A owned")
    viewed = MetricPermissionFactory(user=user, role="can_view", metric__name="B viewed").metric
    MetricFactory(name="C hidden")
    body = client_for(user).get(URL).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert [(m["id"], m["role"]) for m in body["results"]] == [(str(owned.pk), "owner"), (str(viewed.pk), "can_view")]
    assert set(body["results"][0]) == METRIC_KEYS


def test_staff_list_every_metric_as_owner(client_for, staff):
    MetricFactory.create_batch(2)
    body = client_for(staff).get(URL).json()
    assert body["count"] == 2
    assert {m["role"] for m in body["results"]} == {"owner"}


@pytest.mark.parametrize("role", ["can_view", "can_edit", "full_access", "owner"])
def test_every_role_retrieves_the_metric(client_for, role):
    metric, user = holder(role)
    body = client_for(user).get(url(metric)).json()
    assert (body["id"], body["name"], body["owner"], body["role"]) == (
        str(metric.pk),
        metric.name,
        metric.owner_id,
        role,
    )


def test_no_role_is_404_never_403(client_for):
    metric, user = holder(None)
    response = client_for(user).get(url(metric))
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "NOT_FOUND", "message": "Metric not found", "details": None}}


def test_a_missing_metric_looks_like_a_hidden_one(client_for, user):
    assert client_for(user).get(f"{URL}{uuid.uuid4()}/").json() == client_for(user).get(url(MetricFactory())).json()


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "------------------------------------", "1234"])
def test_a_malformed_id_is_404(client_for, user, bad_id):
    response = client_for(user).get(f"{URL}{bad_id}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_fields_selects_what_list_and_retrieve_return(client_for):
    metric, user = holder("owner")
    client = client_for(user)
    assert client.get(URL, {"fields": "id,verification"}).json()["results"] == [
        {"id": str(metric.pk), "verification": "not_requested"}
    ]
    assert client.get(url(metric), {"fields": "name"}).json() == {"name": metric.name}


# --- filters ------------------------------------------------------------------------------


def names(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200, response.json()
    return [m["name"] for m in response.json()["results"]]


def test_verification_filters_with_several_values(client_for, staff):
    MetricFactory(name="a", verification="verified")
    MetricFactory(name="b", verification="in_review")
    MetricFactory(name="c", verification="requested")
    client = client_for(staff)
    assert names(client, verification="verified") == ["a"]
    assert names(client, verification=["verified", "in_review"]) == ["a", "b"]


def test_owner_filters(client_for, staff):
    owner = UserFactory()
    MetricFactory(name="mine", owner=owner)
    MetricFactory(name="theirs")
    assert names(client_for(staff), owner=owner.pk) == ["mine"]


def test_search_looks_in_name_and_description(client_for, staff):
    MetricFactory(name="Revenue")
    MetricFactory(name="Other", description="monthly REVENUE split")
    MetricFactory(name="Churn")
    assert names(client_for(staff), search="revenue") == ["Other", "Revenue"]


@pytest.mark.parametrize("params", [{"verification": "done"}, {"owner": "me"}, {"owner": "2.5"}])
def test_a_bad_filter_is_400(client_for, staff, params):
    response = client_for(staff).get(URL, params)
    assert response.status_code == 400
    assert next(iter(params)) in response.json()["error"]["details"]


# --- create -------------------------------------------------------------------------------


def test_a_user_creates_a_metric_they_own(client_for, user):
    response = client_for(user).post(URL, {"name": "Active users", "definition": "SELECT 1"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["owner"], body["role"], body["version"]) == ("Active users", user.pk, "owner", 1)
    assert body["verification"] == "not_requested"
    assert Metric.objects.get(pk=body["id"]).owner == user


@pytest.mark.parametrize(
    "data", [{}, {"name": ""}, {"name": 7}, {"name": "x", "owner": 1}, {"name": "x", "verification": "great"}]
)
def test_bad_create_input_is_400_and_creates_nothing(client_for, user, data):
    response = client_for(user).post(URL, data, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not Metric.objects.exists()


# --- PATCH --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["can_edit", "full_access", "owner"])
def test_can_edit_and_above_patch_verification(client_for, role):
    metric, user = holder(role)
    response = client_for(user).patch(url(metric), {"verification": "verified"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["verification"], body["version"], body["role"]) == ("verified", 2, role)
    assert Metric.objects.get(pk=metric.pk).verification == "verified"


def test_can_view_patching_is_403(client_for):
    metric, user = holder("can_view")
    response = client_for(user).patch(url(metric), {"verification": "verified"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "PERMISSION_DENIED",
        "message": "Insufficient permissions to update metric",
        "details": None,
    }
    assert Metric.objects.get(pk=metric.pk).verification == "not_requested"


def test_no_role_patching_is_404(client_for):
    metric, user = holder(None)
    assert client_for(user).patch(url(metric), {"verification": "verified"}, format="json").status_code == 404


def test_patch_with_a_stale_version_is_409(client_for):
    metric, user = holder("owner")
    client = client_for(user)
    client.patch(url(metric), {"verification": "requested", "version": 1}, format="json")
    response = client.patch(url(metric), {"verification": "in_review", "version": 1}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert Metric.objects.get(pk=metric.pk).verification == "requested"


def test_patch_without_a_real_change_keeps_the_version(client_for):
    metric, user = holder("owner")
    body = client_for(user).patch(url(metric), {"verification": "not_requested"}, format="json").json()
    assert body["version"] == 1


@pytest.mark.parametrize(
    "data",
    [{}, {"verification": "approved"}, {"verification": None}, {"owner": 3}, {"name": ["x"]}, {"version": 1}],
)
def test_bad_patch_input_is_400(client_for, data):
    metric, user = holder("owner")
    response = client_for(user).patch(url(metric), data, format="json")
    assert response.status_code == 400
    assert Metric.objects.get(pk=metric.pk).version == 1


def test_malformed_json_is_400(client_for):
    metric, user = holder("owner")
    response = client_for(user).generic("PATCH", url(metric), "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MALFORMED_REQUEST"


# --- a name is unique per owner (SPEC §12) ----------------------------------------------------

YOURS_TAKEN = "You already own a metric with this name."
THEIRS_TAKEN = "The owner of this metric already has a metric with this name."


def refused_name(message):
    return {"error": {"code": "VALIDATION_ERROR", "message": f"name: {message}", "details": {"name": [message]}}}


def test_creating_a_second_metric_with_a_name_the_user_owns_is_400_and_creates_nothing(client_for, user):
    first = MetricFactory(owner=user, name="Churn")
    response = client_for(user).post(URL, {"name": "Churn", "definition": "lost / total"}, format="json")
    assert response.status_code == 400
    assert response.json() == refused_name(YOURS_TAKEN)
    assert list(Metric.objects.values_list("pk", flat=True)) == [first.pk]


def test_other_owners_may_use_the_same_name(client_for, user):
    theirs = MetricFactory(name="Churn")
    response = client_for(user).post(URL, {"name": "Churn"}, format="json")
    assert response.status_code == 201
    assert sorted(Metric.objects.filter(name="Churn").values_list("owner", flat=True)) == sorted(
        [theirs.owner_id, user.pk]
    )


def test_renaming_a_metric_onto_another_of_its_owners_names_is_400(client_for, user):
    MetricFactory(owner=user, name="Churn")
    metric = MetricFactory(owner=user, name="Revenue")
    response = client_for(user).patch(url(metric), {"name": "Churn"}, format="json")
    assert response.status_code == 400
    assert response.json() == refused_name(YOURS_TAKEN)
    metric.refresh_from_db()
    assert (metric.name, metric.version) == ("Revenue", 1)


def test_a_metric_keeps_its_name_when_other_fields_change(client_for, user):
    metric = MetricFactory(owner=user, name="Churn")
    client = client_for(user)
    response = client.patch(url(metric), {"name": "Churn", "description": "lost / total"}, format="json")
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"], response.json()["version"]) == (
        "Churn",
        "lost / total",
        2,
    )
    assert client.patch(url(metric), {"verification": "requested"}, format="json").json()["name"] == "Churn"


@pytest.mark.parametrize("role", ["can_edit", "full_access"])
def test_a_metric_shared_with_a_user_is_checked_against_its_owners_names_not_theirs(client_for, role):
    metric, editor = holder(role)
    MetricFactory(owner=metric.owner, name="Churn")
    MetricFactory(owner=editor, name="Revenue")
    client = client_for(editor)
    response = client.patch(url(metric), {"name": "Churn"}, format="json")
    assert response.status_code == 400
    assert response.json() == refused_name(THEIRS_TAKEN)
    assert client.patch(url(metric), {"name": "Revenue"}, format="json").status_code == 200
    assert Metric.objects.get(pk=metric.pk).name == "Revenue"


def test_staff_renaming_someone_elses_metric_onto_a_name_its_owner_uses_is_400(client_for, staff):
    metric = MetricFactory(name="Revenue")
    MetricFactory(owner=metric.owner, name="Churn")
    response = client_for(staff).patch(url(metric), {"name": "Churn"}, format="json")
    assert (response.status_code, response.json()) == (400, refused_name(THEIRS_TAKEN))


def test_a_view_only_holder_renaming_learns_nothing_of_the_owners_names(client_for):
    metric, viewer = holder("can_view")
    MetricFactory(owner=metric.owner, name="Churn")
    client = client_for(viewer)
    taken = client.patch(url(metric), {"name": "Churn"}, format="json")
    free = client.patch(url(metric), {"name": "Free"}, format="json")
    assert taken.status_code == free.status_code == 403
    assert taken.json() == free.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_request_that_loses_the_race_for_a_name_is_409_not_500(client_for, method):
    user = UserFactory()
    revenue = MetricFactory(owner=user, name="Revenue")
    client = client_for(user)
    if method == "POST":
        response = while_uncommitted(
            lambda: MetricFactory(owner=user, name="Churn"), lambda: client.post(URL, {"name": "Churn"}, format="json")
        )
    else:
        response = while_uncommitted(
            lambda: MetricFactory(owner=user, name="Churn"),
            lambda: client.patch(url(revenue), {"name": "Churn"}, format="json"),
        )
    assert response.status_code == 409
    assert response.json() == {"error": {"code": "CONFLICT", "message": YOURS_TAKEN, "details": None}}
    assert sorted(Metric.objects.values_list("name", "version")) == [("Churn", 1), ("Revenue", 1)]


# --- permissions (sharing) ----------------------------------------------------------------------


def share(client, metric, user_id, role):
    return client.post(url(metric, "permissions/"), {"user_id": user_id, "role": role}, format="json")


@pytest.mark.parametrize("role", ["owner", "full_access"])
def test_owner_and_full_access_share_a_metric(client_for, role):
    metric, user = holder(role)
    other = UserFactory()
    response = share(client_for(user), metric, other.pk, "can_edit")
    assert response.status_code == 201
    assert response.json()["user_id"] == other.pk and response.json()["role"] == "can_edit"
    assert client_for(other).get(url(metric)).json()["role"] == "can_edit"


def test_sharing_again_changes_the_role_and_answers_200(client_for):
    metric, owner = holder("owner")
    other = UserFactory()
    share(client_for(owner), metric, other.pk, "can_edit")
    response = share(client_for(owner), metric, other.pk, "can_view")
    assert response.status_code == 200
    assert MetricPermission.objects.get(user=other).role == "can_view"


@pytest.mark.parametrize("role", ["can_view", "can_edit"])
def test_below_full_access_sharing_is_403(client_for, role):
    metric, user = holder(role)
    response = share(client_for(user), metric, UserFactory().pk, "can_view")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Insufficient permissions to share metric"


def test_a_stranger_sharing_is_404(client_for):
    metric, user = holder(None)
    assert share(client_for(user), metric, user.pk, "can_view").status_code == 404
    assert not MetricPermission.objects.exists()


@pytest.mark.parametrize(
    ("make_data", "field"),
    [
        (lambda u: {"user_id": u.pk, "role": "owner"}, "role"),
        (lambda u: {"user_id": u.pk, "role": "admin"}, "role"),
        (lambda u: {"user_id": 987654, "role": "can_view"}, "user_id"),
        (lambda u: {"user_id": "bob", "role": "can_view"}, "user_id"),
        (lambda u: {"role": "can_view"}, "user_id"),
        (lambda u: {"user_id": u.pk, "role": "can_view", "expires": "never"}, "expires"),
    ],
)
def test_bad_share_input_is_400(client_for, make_data, field):
    metric, owner = holder("owner")
    response = client_for(owner).post(url(metric, "permissions/"), make_data(UserFactory()), format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not MetricPermission.objects.exists()


@pytest.mark.parametrize("role", [None, "can_view", "can_edit"])
def test_someone_who_may_not_share_a_metric_learns_nothing_about_user_ids(client_for, role):
    metric, user = holder(role)
    existing = UserFactory().pk
    answers = [share(client_for(user), metric, user_id, "can_view") for user_id in (existing, existing + 1000)]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [
        (404, "NOT_FOUND") if role is None else (403, "PERMISSION_DENIED")
    ] * 2


def test_sharing_with_an_inactive_user_is_400(client_for):
    metric, owner = holder("owner")
    response = share(client_for(owner), metric, UserFactory(is_active=False).pk, "can_view")
    assert response.status_code == 400


def test_sharing_with_the_owner_is_400(client_for):
    metric, user = holder("full_access")
    response = share(client_for(user), metric, metric.owner_id, "can_view")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The owner already holds every role on this metric"


@pytest.mark.parametrize("role", ["can_view", "can_edit", "full_access", "owner"])
def test_every_role_lists_who_a_metric_is_shared_with(client_for, role):
    metric, user = holder(role)
    other = MetricPermissionFactory(metric=metric, role="can_edit").user
    response = client_for(user).get(url(metric, "permissions/"), {"fields": "user_id,role"})
    assert response.status_code == 200
    expected = [{"user_id": other.pk, "role": "can_edit"}]
    if role != "owner":
        expected.insert(0, {"user_id": user.pk, "role": role})
    assert response.json() == expected


def test_a_stranger_listing_permissions_is_404(client_for):
    metric, user = holder(None)
    assert client_for(user).get(url(metric, "permissions/")).status_code == 404


@pytest.mark.parametrize("path", [URL, f"{URL}{uuid.uuid4()}/"])
def test_options_describes_the_endpoint(client_for, user, path):
    assert client_for(user).options(path).status_code == 200


# --- history ----------------------------------------------------------------------------------

HISTORY_KEYS = {"field", "old_value", "new_value", "actor", "bulk_operation", "reason", "created_at"}


def test_history_lists_each_change_and_share_in_order_like_a_tickets(client_for):
    metric, owner = holder("owner")
    other, client = UserFactory(), client_for(owner)
    client.patch(url(metric), {"verification": "requested"}, format="json")
    share(client, metric, other.pk, "can_view")
    client.patch(url(metric), {"name": "Churn"}, format="json")
    body = client.get(url(metric, "history/")).json()
    assert (body["count"], body["previous"], body["next"]) == (3, None, None)
    assert all(set(entry) == HISTORY_KEYS for entry in body["results"])
    assert [(e["field"], e["old_value"], e["new_value"], e["actor"]) for e in body["results"]] == [
        ("verification", "not_requested", "requested", owner.pk),
        (f"permission:{other.pk}", None, "can_view", owner.pk),
        ("name", metric.name, "Churn", owner.pk),
    ]
    assert {(e["bulk_operation"], e["reason"]) for e in body["results"]} == {(None, "")}


def test_history_is_paginated_and_takes_fields(client_for):
    metric, owner = holder("owner")
    for verification in ["requested", "in_review", "verified"]:
        client_for(owner).patch(url(metric), {"verification": verification}, format="json")
    body = client_for(owner).get(url(metric, "history/"), {"limit": 2, "fields": "new_value"}).json()
    assert body["count"] == 3
    assert body["results"] == [{"new_value": "requested"}, {"new_value": "in_review"}]
    assert body["next"] is not None


@pytest.mark.parametrize("role", ["can_view", "can_edit", "full_access"])
def test_every_role_reads_the_history(client_for, role):
    metric, user = holder(role)
    assert client_for(user).get(url(metric, "history/")).status_code == 200


def test_the_history_of_a_metric_without_permission_is_404(client_for):
    metric, user = holder(None)
    response = client_for(user).get(url(metric, "history/"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
