import pytest

from bulkops import errors
from bulkops.operations import Context
from metrics import services
from metrics.models import Metric, MetricEvent, MetricPermission, Role, has_role

from ..factories import MetricFactory, MetricPermissionFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db
ROLES = ["can_view", "can_edit", "full_access", "owner"]


def ctx(user):
    return Context(actor=user)


def shared(role):
    """A metric and a user holding `role` on it."""
    if role == "owner":
        metric = MetricFactory()
        return metric, metric.owner
    permission = MetricPermissionFactory(role=role)
    return permission.metric, permission.user


def verify(metric, user, **kwargs):
    return services.change(metric.pk, ctx(user), services.apply_update, {"verification": "verified"}, **kwargs)


@pytest.mark.parametrize(("role", "at_least"), [(r, a) for r in ROLES for a in ROLES])
def test_roles_are_ordered_can_view_can_edit_full_access_owner(role, at_least):
    assert has_role(role, at_least) == (ROLES.index(role) >= ROLES.index(at_least))


def test_no_role_is_below_every_role():
    assert not has_role(None, Role.CAN_VIEW)


def test_visible_to_annotates_each_users_role():
    owner, editor, stranger = UserFactory(), UserFactory(), UserFactory()
    metric = MetricFactory(owner=owner)
    MetricPermissionFactory(metric=metric, user=editor, role="can_edit")
    assert Metric.objects.visible_to(owner).get().user_role == "owner"
    assert Metric.objects.visible_to(editor).get().user_role == "can_edit"
    assert not Metric.objects.visible_to(stranger).exists()
    assert Metric.objects.visible_to(StaffFactory()).get().user_role == "owner"


@pytest.mark.parametrize("role", ["can_edit", "full_access", "owner"])
def test_can_edit_and_above_change_verification(role):
    metric, user = shared(role)
    change = verify(metric, user)
    metric.refresh_from_db()
    assert (metric.verification, metric.version) == ("verified", 2)
    assert change.before == {"verification": "not_requested", "version": 1}


def test_can_view_may_not_change_anything():
    metric, user = shared("can_view")
    with pytest.raises(errors.PermissionDenied, match="Insufficient permissions to update metric"):
        verify(metric, user)
    assert Metric.objects.get(pk=metric.pk).version == 1


def test_no_role_is_not_found():
    metric = MetricFactory()
    with pytest.raises(errors.NotFound):
        verify(metric, UserFactory())


def test_a_no_op_keeps_the_version():
    metric = MetricFactory(verification="verified")
    change = verify(metric, metric.owner)
    assert not change.changed
    assert Metric.objects.get(pk=metric.pk).version == 1


def test_a_stale_version_is_a_conflict():
    metric = MetricFactory(version=5)
    with pytest.raises(errors.Conflict):
        verify(metric, metric.owner, expected_version=4)
    assert Metric.objects.get(pk=metric.pk).verification == "not_requested"


def test_other_fields_change_with_can_edit():
    metric, user = shared("can_edit")
    services.change(metric.pk, ctx(user), services.apply_update, {"name": "Churn", "definition": "SELECT 1"})
    metric.refresh_from_db()
    assert (metric.name, metric.definition, metric.version) == ("Churn", "SELECT 1", 2)


def test_create_makes_the_actor_owner():
    user = UserFactory()
    metric = services.create(ctx(user), {"name": "Revenue"})
    assert (metric.owner, metric.user_role, metric.version) == (user, "owner", 1)


@pytest.mark.parametrize("role", ["owner", "full_access"])
def test_owner_and_full_access_share(role):
    metric, user = shared(role)
    other = UserFactory()
    permission, created = services.share(metric.pk, user, other, "can_edit")
    assert created and (permission.metric, permission.user, permission.role) == (metric, other, "can_edit")


def test_full_access_may_share_full_access():
    metric, user = shared("full_access")
    other = UserFactory()
    services.share(metric.pk, user, other, "full_access")
    assert MetricPermission.objects.get(user=other).role == "full_access"


def test_sharing_again_replaces_the_role():
    metric = MetricFactory()
    other = UserFactory()
    services.share(metric.pk, metric.owner, other, "can_edit")
    permission, created = services.share(metric.pk, metric.owner, other, "can_view")
    assert not created and permission.role == "can_view"
    assert MetricPermission.objects.filter(user=other).count() == 1


@pytest.mark.parametrize("role", ["can_view", "can_edit"])
def test_below_full_access_may_not_share(role):
    metric, user = shared(role)
    with pytest.raises(errors.PermissionDenied, match="share"):
        services.share(metric.pk, user, UserFactory(), "can_view")


def test_a_stranger_sharing_gets_not_found():
    with pytest.raises(errors.NotFound):
        services.share(MetricFactory().pk, UserFactory(), UserFactory(), "can_view")


def test_the_owner_role_is_never_shared():
    metric = MetricFactory()
    with pytest.raises(errors.ValidationFailed, match="owner role"):
        services.share(metric.pk, metric.owner, UserFactory(), "owner")


def test_the_owner_is_not_given_a_lesser_role():
    metric, user = shared("full_access")
    with pytest.raises(errors.ValidationFailed, match="owner already holds every role"):
        services.share(metric.pk, user, metric.owner, "can_view")
    assert not MetricPermission.objects.filter(user=metric.owner).exists()


def test_save_writes_many_changes_at_once():
    owner = UserFactory()
    metrics = MetricFactory.create_batch(3, owner=owner)
    with services.transaction.atomic():
        locked = services.lock(owner, [m.pk for m in metrics])
        services.save([services.apply_update(m, ctx(owner), {"verification": "in_review"}) for m in locked.values()])
    assert set(Metric.objects.values_list("verification", "version")) == {("in_review", 2)}


# --- the audit trail ------------------------------------------------------------------------


def test_each_changed_field_writes_one_metric_event():
    metric, user = shared("can_edit")
    services.change(metric.pk, Context(actor=user, reason="quarterly review"), services.apply_update,
                    {"name": "Churn", "verification": "verified", "description": ""})  # fmt: skip
    events = MetricEvent.objects.filter(metric=metric)
    assert set(events.values_list("field", "old_value", "new_value")) == {
        ("name", metric.name, "Churn"),
        ("verification", "not_requested", "verified"),
    }
    assert set(events.values_list("actor", "bulk_operation", "reason")) == {(user.pk, None, "quarterly review")}


def test_a_refused_or_empty_change_writes_no_event():
    metric, user = shared("can_view")
    with pytest.raises(errors.PermissionDenied):
        verify(metric, user)
    verify(MetricFactory(verification="verified"), StaffFactory())
    assert not MetricEvent.objects.exists()


def test_sharing_changing_and_taking_back_a_role_are_audited_on_the_metric():
    metric, other = MetricFactory(), UserFactory()
    services.share(metric.pk, metric.owner, other, "can_edit")
    services.share(metric.pk, metric.owner, other, "can_edit")  # the same role again: nothing changes
    services.share(metric.pk, metric.owner, other, "can_view")
    with services.transaction.atomic():
        services.save_share(services.apply_unshare(services.lock(metric.owner, [metric.pk])[metric.pk],
                                                   ctx(metric.owner), other))  # fmt: skip
    assert not MetricPermission.objects.exists()
    events = MetricEvent.objects.filter(metric=metric).order_by("id")
    assert list(events.values_list("field", "old_value", "new_value", "actor")) == [
        (f"permission:{other.pk}", None, "can_edit", metric.owner_id),
        (f"permission:{other.pk}", "can_edit", "can_view", metric.owner_id),
        (f"permission:{other.pk}", "can_view", None, metric.owner_id),
    ]
    assert Metric.objects.get().version == 1


def test_taking_back_a_role_never_given_is_not_found():
    metric = MetricFactory()
    with pytest.raises(errors.NotFound, match="not shared with user"):
        services.apply_unshare(services.lock(metric.owner, [metric.pk])[metric.pk], ctx(metric.owner), UserFactory())


def test_a_refused_share_writes_no_event():
    metric, user = shared("can_edit")
    with pytest.raises(errors.PermissionDenied):
        services.share(metric.pk, user, UserFactory(), "can_view")
    assert not MetricEvent.objects.exists()
