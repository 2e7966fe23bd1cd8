"""Retention: `manage.py cleanup_bulk_operations --older-than 30d` and bulkops.retention."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from bulkops import retention, services
from bulkops.models import BulkOperation, BulkOperationItem
from bulkops.services import Request
from tickets.models import TicketEvent

from ..factories import AgentFactory, TicketFactory


def operation(user, *, days_ago, status="completed", items=3):
    op, _ = services.start_operation(
        user,
        Request(resource_type="tickets", operation_type="update_status", ids=list(range(1, items + 1))),
    )
    created = timezone.now() - timedelta(days=days_ago)
    BulkOperation.objects.filter(pk=op.pk).update(status=status, created_at=created, completed_at=created)
    return op


@pytest.fixture
def user(db, settings):
    settings.BULKOPS_MAX_ACTIVE_PER_USER = 100
    return AgentFactory()


def remaining():
    return set(BulkOperation.objects.values_list("pk", flat=True))


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["completed", "partial", "failed", "cancelled"])
def test_it_deletes_old_finished_operations_and_their_items(user, status):
    old = operation(user, days_ago=31, status=status)
    kept = operation(user, days_ago=29)
    assert retention.delete_old_operations(timedelta(days=30)) == (1, 3)
    assert remaining() == {kept.pk}
    assert not BulkOperationItem.objects.filter(operation_id=old.pk).exists()
    assert BulkOperationItem.objects.filter(operation=kept).count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["pending", "in_progress", "cancelling"])
def test_it_keeps_old_operations_that_have_not_finished(user, status):
    active = operation(user, days_ago=90, status=status)
    assert retention.delete_old_operations(timedelta(days=30)) == (0, 0)
    assert remaining() == {active.pk}


@pytest.mark.django_db
def test_it_deletes_items_in_batches(user, monkeypatch):
    monkeypatch.setattr(retention, "ITEM_CHUNK", 4)
    monkeypatch.setattr(retention, "OPERATION_CHUNK", 2)
    for _ in range(3):
        operation(user, days_ago=40, items=10)
    kept = operation(user, days_ago=1, items=10)
    assert retention.delete_old_operations(timedelta(days=30)) == (3, 30)
    assert remaining() == {kept.pk}
    assert BulkOperationItem.objects.count() == 10


@pytest.mark.django_db
def test_a_limit_bounds_one_run(user):
    for days in (50, 40, 35):
        operation(user, days_ago=days)
    assert retention.delete_old_operations(timedelta(days=30), limit=2) == (2, 6)
    assert BulkOperation.objects.get().created_at < timezone.now() - timedelta(days=34)  # the oldest went first


@pytest.mark.django_db
def test_the_default_age_is_the_retention_setting(user, settings):
    settings.BULKOPS_RETENTION_DAYS = 7
    operation(user, days_ago=8)
    kept = operation(user, days_ago=6)
    assert retention.delete_old_operations() == (1, 3)
    assert remaining() == {kept.pk}


@pytest.mark.django_db
def test_audit_rows_and_later_operations_outlive_a_deleted_operation(user):
    old = operation(user, days_ago=60)
    ticket = TicketFactory()
    event = TicketEvent.objects.create(ticket=ticket, actor=user, bulk_operation=old, field="status", reason="why")
    retry, _ = services.start_operation(
        user, Request(resource_type="tickets", operation_type="update_status", ids=[1], retry_of=old)
    )
    retention.delete_old_operations(timedelta(days=30))
    event.refresh_from_db()
    retry.refresh_from_db()
    assert (event.bulk_operation_id, event.reason) == (None, "why")
    assert retry.retry_of_id is None


@pytest.mark.django_db
def test_the_command_takes_days_or_hours(user, capsys):
    operation(user, days_ago=3)
    recent = operation(user, days_ago=0.5)
    call_command("cleanup_bulk_operations", "--older-than", "2d")
    assert remaining() == {recent.pk}
    assert "Deleted 1 operations and 3 items." in capsys.readouterr().out
    call_command("cleanup_bulk_operations", "--older-than", "6h")
    assert remaining() == set()


@pytest.mark.django_db
@pytest.mark.parametrize("age", ["30", "d", "30w", "-1d", "1.5d"])
def test_the_command_refuses_an_age_it_cannot_read(user, age):
    operation(user, days_ago=100)
    with pytest.raises(CommandError, match="such as 30d or 12h"):
        call_command("cleanup_bulk_operations", f"--older-than={age}")
    assert BulkOperation.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "age"), [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), (" 1d ", timedelta(days=1))]
)
def test_parse_age(text, age):
    assert retention.parse_age(text) == age


@pytest.mark.django_db
def test_an_operation_deleted_with_its_user_takes_its_items_along(user):
    # The items table has no foreign key constraint in PostgreSQL (docs/engine.md, "The items
    # table"): Django's own cascade is what removes them.
    operation(user, days_ago=1)
    kept = operation(AgentFactory(), days_ago=1)
    user.delete()
    assert remaining() == {kept.pk}
    assert BulkOperationItem.objects.count() == 3
