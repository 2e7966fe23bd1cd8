"""metrics/migrations: a metric's name becomes unique per owner (0004 renames the duplicates a
database holds, 0005 adds the constraint), run for real with Django's migration executor."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from metrics.models import Metric, MetricEvent

from ..factories import UserFactory

BEFORE = ("metrics", "0003_metricevent")
REASON = "Renamed when metric names became unique per owner: an older metric of the same owner has this name"


@pytest.fixture
def before_unique_names(transactional_db):
    """The metrics app's models as they were before 0004, on a database migrated back to then;
    the database is migrated forward again afterwards."""
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        yield executor.loader.project_state([BEFORE]).apps.get_model("metrics", "Metric")
    finally:
        migrate_to_latest()


def migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_later_metrics_of_an_owner_sharing_a_name_are_renamed_then_the_name_is_unique(before_unique_names):
    old_metric = before_unique_names
    owner, other = UserFactory(), UserFactory()
    start = timezone.now() - timedelta(days=1)

    def metric(name, minutes, owner=owner, pk=None):
        made = old_metric.objects.create(id=pk or uuid.uuid4(), owner_id=owner.pk, name=name, version=3)
        old_metric.objects.filter(pk=made.pk).update(created_at=start + timedelta(minutes=minutes))
        return made.pk

    oldest, second, third = metric("Churn", 1), metric("Churn", 2), metric("Churn", 3)
    taken = metric("Churn (2)", 0)  # a name a renamed one might have taken: it is skipped
    theirs = metric("Churn", 4, owner=other)  # another owner's Churn is no duplicate
    long_name = "x" * 200
    # The same moment: the lower id keeps the name.
    first_long = metric(long_name, 5, pk=uuid.UUID(int=1))
    second_long = metric(long_name, 5, pk=uuid.UUID(int=2))

    migrate_to_latest()

    names = dict(Metric.objects.values_list("pk", "name"))
    assert [names[pk] for pk in (oldest, second, third, taken, theirs)] == [
        "Churn", "Churn (3)", "Churn (4)", "Churn (2)", "Churn",
    ]  # fmt: skip
    assert (names[first_long], names[second_long]) == (long_name, "x" * 196 + " (2)")
    renamed = {second, third, second_long}
    assert {pk: v for pk, v in Metric.objects.values_list("pk", "version")} == {
        pk: 4 if pk in renamed else 3 for pk in names
    }
    events = MetricEvent.objects.values_list("metric", "actor", "field", "old_value", "new_value", "reason")
    assert sorted(events, key=str) == sorted(
        [
            (second, None, "name", "Churn", "Churn (3)", REASON),
            (third, None, "name", "Churn", "Churn (4)", REASON),
            (second_long, None, "name", long_name, "x" * 196 + " (2)", REASON),
        ],
        key=str,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Metric.objects.create(owner=owner, name="Churn")
    assert Metric.objects.create(owner=UserFactory(), name="Churn").name == "Churn"


def test_a_database_without_duplicates_is_left_as_it_is(before_unique_names):
    owner = UserFactory()
    kept = {before_unique_names.objects.create(owner_id=owner.pk, name=name).pk: name for name in ("A", "B", "a")}
    migrate_to_latest()
    assert dict(Metric.objects.values_list("pk", "name")) == kept
    assert set(Metric.objects.values_list("version", flat=True)) == {1}
    assert not MetricEvent.objects.exists()
