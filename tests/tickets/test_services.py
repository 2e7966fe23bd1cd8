import itertools

import pytest

from bulkops import errors
from tickets import services
from tickets.models import TRANSITIONS, Comment, Status, Ticket, TicketEvent

from ..factories import AgentFactory, CategoryFactory, StaffFactory, TicketFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

ALLOWED = {
    ("open", "in_progress"), ("open", "pending"), ("open", "resolved"), ("open", "closed"),
    ("in_progress", "open"), ("in_progress", "pending"), ("in_progress", "resolved"), ("in_progress", "closed"),
    ("pending", "open"), ("pending", "in_progress"), ("pending", "resolved"), ("pending", "closed"),
    ("resolved", "open"), ("resolved", "closed"),
}  # fmt: skip
CHANGES = [(old, new) for old, new in itertools.product(Status.values, repeat=2) if old != new]


def ctx(user, **kwargs):
    return services.Context(actor=user, **kwargs)


def update(ticket, user, changes, **kwargs):
    return services.change(ticket.pk, ctx(user), services.apply_update, changes, **kwargs)


def test_the_transition_table_is_the_one_in_the_spec():
    assert {(old, new) for old, targets in TRANSITIONS.items() for new in targets} == ALLOWED


@pytest.mark.parametrize(("old", "new"), CHANGES)
def test_each_status_change_is_allowed_or_refused_as_the_table_says(old, new):
    ticket = TicketFactory(status=old)
    if (old, new) in ALLOWED:
        change = update(ticket, AgentFactory(), {"status": new})
        assert change.ticket.status == new
        assert Ticket.objects.get(pk=ticket.pk).status == new
    else:
        with pytest.raises(errors.InvalidTransition, match=f"from {old} to {new}"):
            update(ticket, AgentFactory(), {"status": new})
        assert Ticket.objects.get(pk=ticket.pk).status == old


@pytest.mark.parametrize("status", Status.values)
def test_setting_the_status_a_ticket_already_has_is_a_no_op(status):
    ticket = TicketFactory(status=status)
    change = update(ticket, AgentFactory(), {"status": status})
    assert not change.changed
    assert Ticket.objects.get(pk=ticket.pk).version == 1
    assert not TicketEvent.objects.exists()


def test_an_update_bumps_the_version_once_and_writes_one_event_per_field():
    agent, category = AgentFactory(), CategoryFactory()
    ticket = TicketFactory(priority="normal")
    update(
        ticket, agent, {"status": "pending", "priority": "high", "category_id": category.pk, "assignee_id": agent.pk}
    )
    ticket.refresh_from_db()
    assert ticket.version == 2
    assert (ticket.status, ticket.priority, ticket.category_id, ticket.assignee_id) == (
        "pending",
        "high",
        category.pk,
        agent.pk,
    )
    events = {e.field: (e.old_value, e.new_value, e.actor_id) for e in TicketEvent.objects.filter(ticket=ticket)}
    assert events == {
        "status": ("open", "pending", agent.pk),
        "priority": ("normal", "high", agent.pk),
        "category": (None, str(category.pk), agent.pk),
        "assignee": (None, str(agent.pk), agent.pk),
    }


def test_only_the_fields_that_change_get_an_event():
    ticket = TicketFactory(priority="high")
    update(ticket, AgentFactory(), {"priority": "high", "title": "New title"})
    assert list(TicketEvent.objects.values_list("field", flat=True)) == ["title"]
    assert Ticket.objects.get(pk=ticket.pk).version == 2


def test_the_change_remembers_the_values_before_it():
    ticket = TicketFactory(priority="low", title="Old")
    change = update(ticket, AgentFactory(), {"priority": "urgent", "title": "New"})
    assert change.before == {"priority": "low", "title": "Old", "version": 1}


def test_every_change_bumps_the_version_again():
    ticket, agent = TicketFactory(), AgentFactory()
    update(ticket, agent, {"priority": "high"})
    update(ticket, agent, {"priority": "low"})
    update(ticket, agent, {"priority": "low"})
    assert Ticket.objects.get(pk=ticket.pk).version == 3


def test_the_reason_and_operation_are_stored_on_the_audit_rows():
    ticket = TicketFactory()
    services.change(
        ticket.pk, ctx(AgentFactory(), reason="Quarterly cleanup"), services.apply_update, {"priority": "low"}
    )
    assert TicketEvent.objects.get().reason == "Quarterly cleanup"


def test_a_matching_expected_version_is_accepted():
    ticket = TicketFactory()
    update(ticket, AgentFactory(), {"priority": "low"}, expected_version=1)
    assert Ticket.objects.get(pk=ticket.pk).version == 2


def test_a_stale_expected_version_is_a_conflict_and_changes_nothing():
    ticket = TicketFactory(version=3)
    with pytest.raises(errors.Conflict, match="version 3, not 2"):
        update(ticket, AgentFactory(), {"priority": "low"}, expected_version=2)
    assert Ticket.objects.get(pk=ticket.pk).priority == "normal"


def test_a_permission_refusal_comes_before_a_version_conflict():
    ticket = TicketFactory(version=3)
    with pytest.raises(errors.PermissionDenied):
        update(ticket, ticket.requester, {"status": "closed"}, expected_version=1)


def test_a_requester_may_change_title_and_description_of_their_own_ticket():
    ticket = TicketFactory()
    update(ticket, ticket.requester, {"title": "Better title", "description": "More detail"})
    ticket.refresh_from_db()
    assert (ticket.title, ticket.description, ticket.version) == ("Better title", "More detail", 2)


@pytest.mark.parametrize(
    "changes", [{"status": "closed"}, {"priority": "urgent"}, {"category_id": None}, {"assignee_id": None}]
)
def test_a_requester_may_not_change_the_other_fields(changes):
    ticket = TicketFactory()
    with pytest.raises(errors.PermissionDenied, match="Insufficient permissions to update ticket"):
        update(ticket, ticket.requester, changes)


def test_an_assignee_without_agent_permission_may_see_but_not_change():
    assignee = UserFactory()
    ticket = TicketFactory(assignee=assignee)
    with pytest.raises(errors.PermissionDenied):
        update(ticket, assignee, {"title": "Mine now"})


def test_a_stranger_gets_not_found():
    ticket = TicketFactory()
    with pytest.raises(errors.NotFound):
        update(ticket, UserFactory(), {"title": "Hello"})


def test_a_missing_ticket_is_not_found():
    with pytest.raises(errors.NotFound):
        services.change(987654, ctx(AgentFactory()), services.apply_update, {"title": "x"})


def test_a_deleted_ticket_cannot_be_changed_even_by_staff():
    ticket = TicketFactory(is_deleted=True)
    with pytest.raises(errors.NotFound):
        update(ticket, StaffFactory(), {"title": "x"})


def test_a_comment_is_stored_with_its_author_without_bumping_the_version():
    ticket = TicketFactory()
    change = services.change(ticket.pk, ctx(ticket.requester), services.apply_comment, "It is still broken")
    comment = Comment.objects.get()
    assert (comment.ticket_id, comment.author_id, comment.body) == (
        ticket.pk,
        ticket.requester_id,
        "It is still broken",
    )
    assert change.comments[0].pk == comment.pk
    assert Ticket.objects.get(pk=ticket.pk).version == 1


def test_an_agent_may_comment_on_any_ticket():
    ticket = TicketFactory()
    services.change(ticket.pk, ctx(AgentFactory()), services.apply_comment, "On it")
    assert Comment.objects.count() == 1


def test_an_assignee_without_agent_permission_may_not_comment():
    assignee = UserFactory()
    ticket = TicketFactory(assignee=assignee)
    with pytest.raises(errors.PermissionDenied, match="comment"):
        services.change(ticket.pk, ctx(assignee), services.apply_comment, "Hi")


def test_delete_is_soft_audited_and_bumps_the_version():
    ticket, deleter = TicketFactory(), StaffFactory()
    services.change(ticket.pk, ctx(deleter), services.apply_delete)
    ticket.refresh_from_db()
    assert ticket.is_deleted and ticket.deleted_at is not None and ticket.version == 2
    assert set(TicketEvent.objects.values_list("field", flat=True)) == {"is_deleted", "deleted_at"}
    assert TicketEvent.objects.get(field="is_deleted").new_value == "True"


def test_delete_needs_the_delete_permission():
    ticket = TicketFactory()
    with pytest.raises(errors.PermissionDenied, match="delete"):
        services.change(ticket.pk, ctx(AgentFactory()), services.apply_delete)
    assert not Ticket.objects.get(pk=ticket.pk).is_deleted


def test_a_requester_with_the_delete_permission_may_delete_their_own_ticket():
    ticket = TicketFactory()
    grant(ticket.requester, ["tickets.delete_ticket"])
    requester = type(ticket.requester).objects.get(pk=ticket.requester_id)  # fresh permission cache
    services.change(ticket.pk, ctx(requester), services.apply_delete)
    assert Ticket.objects.get(pk=ticket.pk).is_deleted


def test_restore_undeletes_and_is_audited():
    agent = AgentFactory(perms=["tickets.change_ticket", "tickets.delete_ticket"])
    ticket = TicketFactory()
    services.change(ticket.pk, ctx(agent), services.apply_delete)
    services.change(ticket.pk, ctx(agent), services.apply_restore, include_deleted=True)
    ticket.refresh_from_db()
    assert (ticket.is_deleted, ticket.deleted_at, ticket.version) == (False, None, 3)
    assert TicketEvent.objects.filter(field="is_deleted").count() == 2


def test_restore_of_a_live_ticket_changes_nothing():
    ticket = TicketFactory()
    change = services.change(ticket.pk, ctx(StaffFactory()), services.apply_restore, include_deleted=True)
    assert not change.changed
    assert Ticket.objects.get(pk=ticket.pk).version == 1


def test_restore_needs_the_delete_permission():
    ticket = TicketFactory(is_deleted=True)
    with pytest.raises(errors.PermissionDenied):
        services.change(ticket.pk, ctx(AgentFactory()), services.apply_restore, include_deleted=True)


def test_a_stranger_cannot_restore_and_learns_nothing():
    ticket = TicketFactory(is_deleted=True)
    stranger = UserFactory(perms=["tickets.delete_ticket"])
    with pytest.raises(errors.NotFound):
        services.change(ticket.pk, ctx(stranger), services.apply_restore, include_deleted=True)


def test_create_makes_the_actor_the_requester():
    user = UserFactory()
    ticket = services.create(ctx(user), {"title": "Printer jammed", "description": "Floor 3"})
    assert (ticket.requester_id, ticket.status, ticket.version) == (user.pk, "open", 1)


def test_an_agent_may_create_for_another_requester_with_any_field():
    agent, requester, category = AgentFactory(), UserFactory(), CategoryFactory()
    ticket = services.create(
        ctx(agent),
        {"title": "Hi", "requester_id": requester.pk, "priority": "high", "category_id": category.pk},
    )
    assert (ticket.requester_id, ticket.priority, ticket.category_id) == (requester.pk, "high", category.pk)


@pytest.mark.parametrize("extra", [{"priority": "high"}, {"status": "closed"}, {"requester_id": 1}])
def test_a_requester_may_only_create_with_title_and_description(extra):
    with pytest.raises(errors.PermissionDenied):
        services.create(ctx(UserFactory()), {"title": "Hi", **extra})
    assert not Ticket.objects.exists()


def test_lock_returns_only_visible_tickets_by_id():
    user = UserFactory()
    mine, other = TicketFactory(requester=user), TicketFactory()
    assert list(services.lock(user, [other.pk, mine.pk])) == [mine.pk]


def test_save_writes_many_changes_at_once():
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(3)
    with services.transaction.atomic():
        locked = services.lock(agent, [t.pk for t in tickets])
        changes = [services.apply_update(t, ctx(agent), {"priority": "urgent"}) for t in locked.values()]
        services.save(changes)
    assert set(Ticket.objects.values_list("priority", "version")) == {("urgent", 2)}
    assert TicketEvent.objects.count() == 3


def test_an_unused_category_can_be_deleted():
    category = CategoryFactory()
    services.delete_category(category, ctx(AgentFactory()))
    assert not type(category).objects.exists()


def test_a_category_set_on_tickets_cannot_be_deleted():
    category = CategoryFactory(name="Hardware")
    TicketFactory.create_batch(2, category=category)
    with pytest.raises(errors.Conflict, match="'Hardware' is set on 2 tickets"):
        services.delete_category(category, ctx(AgentFactory()))
    assert Ticket.objects.filter(category=category).count() == 2
