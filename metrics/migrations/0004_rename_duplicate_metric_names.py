"""Before a metric's name becomes unique per owner (0005, SPEC §12): rename the duplicates.

Of an owner's metrics that share a name, the oldest (by `created_at`, then `id`) keeps it; each
later one gets " (2)", " (3)" … appended — the first number that makes a name the owner has
no other metric with, cut to fit 200 characters. Each rename is a change of its metric as any
other: `version` + 1, and a MetricEvent (no actor) whose `reason` says why. The reverse keeps
the new names.
"""

from django.db import migrations
from django.db.models import Count
from django.utils import timezone

MAX_LENGTH = 200  # Metric.name
REASON = "Renamed when metric names became unique per owner: an older metric of the same owner has this name"


def free_name(name, number, taken):
    """(name with the first free " (n)" from `number` on, the number after it)."""
    while True:
        suffix = f" ({number})"
        candidate = name[: MAX_LENGTH - len(suffix)] + suffix
        number += 1
        if candidate not in taken:
            return candidate, number


def rename_duplicates(apps, schema_editor):
    Metric = apps.get_model("metrics", "Metric")
    MetricEvent = apps.get_model("metrics", "MetricEvent")
    metrics = Metric.objects.using(schema_editor.connection.alias)
    groups = list(
        metrics.values_list("owner_id", "name").annotate(n=Count("pk")).filter(n__gt=1).order_by("owner_id", "name")
    )
    now, taken, events = timezone.now(), {}, []
    for owner_id, name, _ in groups:
        if owner_id not in taken:
            taken[owner_id] = set(metrics.filter(owner_id=owner_id).values_list("name", flat=True))
        names, number = taken[owner_id], 2
        for metric in list(metrics.filter(owner_id=owner_id, name=name).order_by("created_at", "pk"))[1:]:
            new_name, number = free_name(name, number, names)
            names.add(new_name)
            metric.name, metric.version, metric.updated_at = new_name, metric.version + 1, now
            metric.save(update_fields=["name", "version", "updated_at"])
            events.append(
                MetricEvent(metric=metric, field="name", old_value=name, new_value=new_name, reason=REASON)
            )
    MetricEvent.objects.using(schema_editor.connection.alias).bulk_create(events)


class Migration(migrations.Migration):

    dependencies = [
        ("metrics", "0003_metricevent"),
    ]

    operations = [
        migrations.RunPython(rename_duplicates, migrations.RunPython.noop),
    ]
