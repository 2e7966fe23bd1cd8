"""Every change to a metric goes through here (single endpoints, bulk engine, batch, admin).

As in `tickets.services`: `apply_*` change a locked metric in memory, `save` writes many.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from bulkops import errors
from bulkops.sql import update_rows

from .models import Metric, MetricPermission, Role, has_role

SAVED_FIELDS = ["verification", "name", "description", "definition", "version", "updated_at"]


@dataclass
class Change:
    metric: Metric
    before: dict = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.before)


def check_role(metric, at_least, action):
    if not has_role(metric.user_role, at_least):
        raise errors.PermissionDenied(f"Insufficient permissions to {action} metric")


def apply_update(metric, ctx, changes, *, expected_version=None):
    """Validate and apply changes ({verification, name, …}) to a locked metric; needs can_edit."""
    check_role(metric, Role.CAN_EDIT, "update")
    if expected_version is not None and metric.version != expected_version:
        raise errors.Conflict(f"Metric {metric.pk} is at version {metric.version}, not {expected_version}")
    change = Change(metric)
    for name, value in changes.items():
        old = getattr(metric, name)
        if old != value:
            change.before[name] = old
            setattr(metric, name, value)
    if change.changed:
        change.before["version"] = metric.version
        metric.version += 1
        metric.updated_at = timezone.now()
    return change


def create(ctx, data):
    """A new metric owned by the actor."""
    metric = Metric.objects.create(owner=ctx.actor, **data)
    metric.user_role = Role.OWNER
    return metric


def save(changes):
    update_rows(Metric, [c.metric for c in changes if c.changed], SAVED_FIELDS)


def lock(user, metric_ids):
    """Lock the metrics among `metric_ids` that `user` can see, in id order."""
    qs = Metric.objects.visible_to(user).select_for_update(of=("self",)).filter(pk__in=metric_ids).order_by("pk")
    return {m.pk: m for m in qs}


def change(metric_id, ctx, apply, *args, **kwargs):
    with transaction.atomic():
        metric = lock(ctx.actor, [metric_id]).get(metric_id)
        if metric is None:
            raise errors.NotFound(f"Metric {metric_id} not found")
        result = apply(metric, ctx, *args, **kwargs)
        save([result])
    return result


def share(metric_id, actor, user, role):
    """Give `user` a role on a metric (replacing the one they had) ⇒ (permission, created).

    Owner and full_access may share, up to full_access: the owner role is the owner FK's alone.
    """
    with transaction.atomic():
        metric = lock(actor, [metric_id]).get(metric_id)
        if metric is None:
            raise errors.NotFound(f"Metric {metric_id} not found")
        check_role(metric, Role.FULL_ACCESS, "share")
        if role == Role.OWNER:
            raise errors.ValidationFailed("The owner role cannot be shared")
        if user.pk == metric.owner_id:
            raise errors.ValidationFailed("The owner already holds every role on this metric")
        return MetricPermission.objects.update_or_create(metric=metric, user=user, defaults={"role": role})
