"""Every change to a metric goes through here (single endpoints, bulk engine, batch, admin).

As in `tickets.services`: `apply_*` change a locked metric in memory and return the unsaved
audit rows, `save` writes many. Sharing is audited on the metric too
(`field: "permission:<user id>"`); it does not change the metric's `version`.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from bulkops import audit, errors
from bulkops.operations import Context
from bulkops.services import check_unmoved, refusing_duplicate
from bulkops.sql import insert_rows, update_rows

from .models import UNIQUE_NAME, Metric, MetricEvent, MetricPermission, Role, has_role

SAVED_FIELDS = ["verification", "name", "description", "definition", "version", "updated_at"]
CREATED_FIELDS = ["id", "owner", *SAVED_FIELDS, "created_at"]
EVENT_FIELDS = audit.columns(MetricEvent)
Event = audit.row_type(MetricEvent)  # metric_id, actor_id, bulk_operation_id, field, old_value, …


@dataclass
class Change:
    metric: Metric
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)  # what the change set: a revert checks it still holds
    events: list = field(default_factory=list)
    created: bool = False  # a new metric, inserted by `save`
    removed: bool = False  # a metric an import created, deleted by `save` (the revert of that import)

    @property
    def record(self):
        """The changed metric, as the engine names it (bulkops.resources.VersionedResource)."""
        return self.metric

    @property
    def changed(self):
        return bool(self.created or self.removed or self.events)


@dataclass
class Share:
    """A role given (`permission.role` set) or taken back (`removed`), with its audit row."""

    permission: MetricPermission
    event: object  # an unsaved audit row (Event), or None
    removed: bool = False


def event(metric, ctx, name, old, new, now):
    return Event(
        metric.pk,
        ctx.actor.pk,
        ctx.operation_id,
        name,
        None if old is None else str(old),
        None if new is None else str(new),
        ctx.reason,
        now,
    )


def check_role(metric, at_least, action):
    if not has_role(metric.user_role, at_least):
        raise errors.PermissionDenied(f"Insufficient permissions to {action} metric")


def apply_update(metric, ctx, changes, *, expected_version=None):
    """Validate and apply changes ({verification, name, …}) to a locked metric; needs can_edit."""
    check_role(metric, Role.CAN_EDIT, "update")
    if expected_version is not None and metric.version != expected_version:
        raise errors.Conflict(f"Metric {metric.pk} is at version {metric.version}, not {expected_version}")
    change, now = Change(metric), timezone.now()
    for name, value in changes.items():
        old = getattr(metric, name)
        if old != value:
            change.before[name] = old
            change.after[name] = value
            change.events.append(event(metric, ctx, name, old, value, now))
            setattr(metric, name, value)
    if change.changed:
        change.before["version"] = metric.version
        metric.version += 1
        metric.updated_at = now
    return change


def apply_revert(metric, ctx, fields, *, expected_version, after=None):
    """Put back values a bulk operation replaced, unless one of those fields changed since:
    `after` holds what the operation set (older items: the `expected_version` instead)."""
    check_role(metric, Role.CAN_EDIT, "update")  # before the conflict: a refusal must not depend on it
    if after is not None:
        check_unmoved(metric, after, "Metric")
        expected_version = None
    if "name" in fields and name_taken(metric.owner_id, fields["name"], metric_id=metric.pk):
        raise errors.Conflict(f"Metric {metric.pk}: its owner has another metric named {fields['name']!r} now")
    return apply_update(metric, ctx, fields, expected_version=expected_version)


def apply_create(ctx, data):
    """A new metric owned by the actor, in memory: written by `save`."""
    metric = Metric(owner=ctx.actor, **data)
    metric.user_role = Role.OWNER
    return Change(metric, after=dict(data), created=True)


def apply_remove(metric, ctx, *, expected_version):
    """Delete a metric an import created (its revert): its owner only, and only while it is
    at the version the import left it at. Metrics have no soft delete."""
    check_role(metric, Role.OWNER, "delete")
    if metric.version != expected_version:
        raise errors.Conflict(f"Metric {metric.pk} changed since it was imported")
    return Change(metric, removed=True)


def create(ctx, data):
    """A new metric owned by the actor (the single POST and the batch endpoint)."""
    change = apply_create(ctx, data)
    with refusing_taken_name(ctx.actor, ctx.actor.pk), transaction.atomic():
        save([change])
    return change.metric


def name_taken(owner_id, name, *, metric_id=None):
    """Whether the owner has a metric named `name` besides `metric_id` (the one being changed):
    a name is unique per owner (SPEC §12), so that an import can match on it."""
    return Metric.objects.filter(owner_id=owner_id, name=name).exclude(pk=metric_id).exists()


def check_name_free(actor, owner_id, name, *, metric=None):
    """Refuse a name the owner uses on another metric than `metric` (the one being changed,
    which may keep its own without a query)."""
    if metric is not None and name == metric.name:
        return
    if name_taken(owner_id, name, metric_id=metric and metric.pk):
        raise errors.ValidationFailed(name_taken_message(actor, owner_id))


def name_taken_message(actor, owner_id):
    if actor.pk == owner_id:
        return "You already own a metric with this name."
    return "The owner of this metric already has a metric with this name."


def refusing_taken_name(actor, owner_id):
    """Should the database refuse the name (two requests found it free at once, and the other
    wrote first): CONFLICT, not a server error."""
    return refusing_duplicate(UNIQUE_NAME, name_taken_message(actor, owner_id))


def lock_own(user, names):
    """{name: metric} of the actor's own metrics named one of `names`, locked in id order
    (imports match on the name among the caller's own: one metric per name, models.UNIQUE_NAME)."""
    qs = Metric.objects.visible_to(user).filter(owner=user, name__any=names)
    return {m.name: m for m in qs.select_for_update(of=("self",)).order_by("pk")}


def save(changes):
    """Write the metrics and audit rows of `changes` in three statements."""
    changed = [c for c in changes if c.changed]
    insert_rows(Metric, [c.metric for c in changed if c.created], CREATED_FIELDS)
    update_rows(Metric, [c.metric for c in changed if not (c.created or c.removed)], SAVED_FIELDS)
    removed = [c.metric.pk for c in changed if c.removed]
    if removed:
        Metric.objects.filter(pk__in=removed).delete()
    insert_rows(MetricEvent, [e for c in changed for e in c.events], EVENT_FIELDS, returning=False)


def lock(user, metric_ids):
    """Lock the metrics among `metric_ids` that `user` can see, in id order."""
    qs = Metric.objects.visible_to(user).select_for_update(of=("self",)).filter(pk__any=metric_ids).order_by("pk")
    return {m.pk: m for m in qs}


def locked(metric_id, ctx):
    metric = lock(ctx.actor, [metric_id]).get(metric_id)
    if metric is None:
        raise errors.NotFound(f"Metric {metric_id} not found")
    return metric


def change(metric_id, ctx, apply, *args, **kwargs):
    with transaction.atomic():
        result = apply(locked(metric_id, ctx), ctx, *args, **kwargs)
        # A savepoint: which message fits is known only once the metric is locked.
        with refusing_taken_name(ctx.actor, result.metric.owner_id), transaction.atomic():
            save([result])
    return result


# --- sharing ------------------------------------------------------------------------------


def _shared(metric, ctx, user):
    """The permission `user` holds on a locked metric (unsaved if none), once the actor may share."""
    check_role(metric, Role.FULL_ACCESS, "share")
    existing = MetricPermission.objects.filter(metric=metric, user=user).first()
    return existing or MetricPermission(metric=metric, user=user)


def apply_share(metric, ctx, user, role):
    """Give `user` a role on a locked metric, replacing the one they had, in memory.

    Owner and full_access may share, up to full_access: the owner role is the owner FK's alone.
    """
    permission = _shared(metric, ctx, user)
    if role == Role.OWNER:
        raise errors.ValidationFailed("The owner role cannot be shared")
    if user.pk == metric.owner_id:
        raise errors.ValidationFailed("The owner already holds every role on this metric")
    old, permission.role = permission.role or None, role
    audit = event(metric, ctx, f"permission:{user.pk}", old, role, timezone.now()) if old != role else None
    return Share(permission, audit)


def apply_unshare(metric, ctx, user):
    """Take back the role `user` holds on a locked metric, in memory."""
    permission = _shared(metric, ctx, user)
    if permission.pk is None:
        raise errors.NotFound(f"Metric {metric.pk} is not shared with user {user.pk}")
    return Share(permission, event(metric, ctx, f"permission:{user.pk}", permission.role, None, timezone.now()), True)


def save_share(share):
    if share.removed:
        share.permission.delete()
    else:
        share.permission.save()
    if share.event is not None:
        insert_rows(MetricEvent, [share.event], EVENT_FIELDS, returning=False)


def share(metric_id, actor, user, role):
    """Give `user` a role on a metric (replacing the one they had) ⇒ (permission, created)."""
    ctx = Context(actor=actor)
    with transaction.atomic():
        result = apply_share(locked(metric_id, ctx), ctx, user, role)
        created = result.permission.pk is None
        save_share(result)
    return result.permission, created
