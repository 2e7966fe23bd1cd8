"""Every change to a ticket goes through here: single endpoints, the bulk engine, the
batch endpoint and the admin alike.

The `apply_*` functions validate, check permission and change a locked ticket in memory,
returning the unsaved audit rows; `save` writes any number of them in a few statements.
That split lets the bulk engine apply a whole chunk per item in Python and write it at
once, while a single change is simply a chunk of one (`change`).
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from bulkops import audit, errors
from bulkops.operations import Context  # noqa: F401 - re-exported for callers
from bulkops.services import check_unmoved, refusing_duplicate
from bulkops.sql import insert_rows, update_rows

from .models import TRANSITIONS, UNIQUE_EXTERNAL_ID, Category, Comment, Ticket, TicketEvent, is_agent

REQUESTER_FIELDS = {"title", "description"}
EDITABLE_FIELDS = ("title", "description", "status", "priority", "category_id", "assignee_id")
SAVED_FIELDS = [*EDITABLE_FIELDS, "external_id", "version", "is_deleted", "deleted_at", "updated_at"]
CREATED_FIELDS = [*EDITABLE_FIELDS, "external_id", "requester_id", "version", "is_deleted", "created_at", "updated_at"]
EVENT_FIELDS = audit.columns(TicketEvent)
Event = audit.row_type(TicketEvent)  # ticket_id, actor_id, bulk_operation_id, field, old_value, …
COMMENT_FIELDS = ["ticket", "author", "body", "bulk_operation", "created_at"]


@dataclass
class Change:
    """The in-memory result of one apply_* call, written later by `save`."""

    ticket: Ticket
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)  # what the change set: a revert checks it still holds
    events: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    created: bool = False  # a new ticket, inserted by `save`

    @property
    def record(self):
        """The changed ticket, as the engine names it (bulkops.resources.VersionedResource)."""
        return self.ticket

    @property
    def changed(self):
        return bool(self.created or self.events or self.comments)


def _check_live(ticket):
    if ticket.is_deleted:
        raise errors.NotFound(f"Ticket {ticket.pk} not found")


def _check_version(ticket, expected_version):
    if expected_version is not None and ticket.version != expected_version:
        raise errors.Conflict(f"Ticket {ticket.pk} is at version {ticket.version}, not {expected_version}")


def check_can_edit(ticket, user, fields):
    if is_agent(user):
        return
    if ticket.requester_id == user.pk and set(fields) <= REQUESTER_FIELDS:
        return
    raise errors.PermissionDenied("Insufficient permissions to update ticket")


def can_delete(user):
    return user.is_staff or user.has_perm("tickets.delete_ticket")


def check_can_delete(user):
    if not can_delete(user):
        raise errors.PermissionDenied("Insufficient permissions to delete ticket")


def _set(change, name, value, ctx, now):
    ticket = change.ticket
    old = getattr(ticket, name)
    if old == value:
        return
    change.before.setdefault(name, old)
    change.after[name] = value
    setattr(ticket, name, value)
    change.events.append(
        Event(
            ticket.pk,
            ctx.actor.pk,
            ctx.operation_id,
            name.removesuffix("_id"),
            None if old is None else str(old),
            None if value is None else str(value),
            ctx.reason,
            now,
        )
    )


def _bump(change, now):
    if change.changed:
        change.before.setdefault("version", change.ticket.version)
        change.ticket.version += 1
        change.ticket.updated_at = now


def apply_update(ticket, ctx, changes, *, expected_version=None):
    """Validate and apply field changes ({status, priority, title, …}) to a locked ticket."""
    _check_live(ticket)
    check_can_edit(ticket, ctx.actor, changes)  # before the version: a refusal must not depend on it
    _check_version(ticket, expected_version)
    new_status = changes.get("status")
    if new_status is not None and new_status != ticket.status and new_status not in TRANSITIONS[ticket.status]:
        raise errors.InvalidTransition(f"Cannot change status from {ticket.status} to {new_status}")
    change, now = Change(ticket), timezone.now()
    for name, value in changes.items():
        _set(change, name, value, ctx, now)
    _bump(change, now)
    return change


def apply_comment(ticket, ctx, body):
    _check_live(ticket)
    if not (is_agent(ctx.actor) or ticket.requester_id == ctx.actor.pk):
        raise errors.PermissionDenied("Insufficient permissions to comment on ticket")
    change, now = Change(ticket), timezone.now()
    change.comments.append(
        Comment(ticket=ticket, author_id=ctx.actor.pk, body=body, bulk_operation_id=ctx.operation_id, created_at=now)
    )
    return change


def apply_delete(ticket, ctx, *, expected_version=None):
    _check_live(ticket)
    check_can_delete(ctx.actor)
    _check_version(ticket, expected_version)
    change, now = Change(ticket), timezone.now()
    _set(change, "is_deleted", True, ctx, now)
    _set(change, "deleted_at", now, ctx, now)
    _bump(change, now)
    return change


def apply_restore(ticket, ctx):
    check_can_delete(ctx.actor)
    change, now = Change(ticket), timezone.now()
    _set(change, "is_deleted", False, ctx, now)
    _set(change, "deleted_at", None, ctx, now)
    _bump(change, now)
    return change


def save(changes):
    """Write the tickets, audit rows and comments of `changes` in four statements."""
    changed = [c for c in changes if c.changed]
    insert_rows(Ticket, [c.ticket for c in changed if c.created], CREATED_FIELDS)
    # Only the columns some change touched: narrower arrays, less to write.
    columns = {name for c in changed for name in c.before} | {"updated_at"}
    updated = [c.ticket for c in changed if c.events and not c.created]
    update_rows(Ticket, updated, [f for f in SAVED_FIELDS if f in columns])
    insert_rows(TicketEvent, [e for c in changed for e in c.events], EVENT_FIELDS, returning=False)
    insert_rows(Comment, [m for c in changed for m in c.comments], COMMENT_FIELDS)


def lock(user, ticket_ids, *, include_deleted=False):
    """Lock the visible tickets among `ticket_ids`, in id order so that lockers never deadlock."""
    return lock_by(user, "pk", ticket_ids, include_deleted=include_deleted)


def lock_by(user, field, values, *, include_deleted=False):
    """{value of `field`: ticket} for the visible tickets whose `field` is one of `values`,
    locked in id order (imports match on `external_id`)."""
    qs = Ticket.objects.visible_to(user, include_deleted=include_deleted).select_for_update(of=("self",))
    return {getattr(t, field): t for t in qs.filter(**{f"{field}__any": values}).order_by("pk")}


def change(ticket_id, ctx, apply, *args, include_deleted=False, **kwargs):
    """One change to one ticket, in its own transaction: what the single endpoints call."""
    with refusing_taken_external_id(), transaction.atomic():
        ticket = lock(ctx.actor, [ticket_id], include_deleted=include_deleted).get(ticket_id)
        if ticket is None:
            raise errors.NotFound(f"Ticket {ticket_id} not found")
        result = apply(ticket, ctx, *args, **kwargs)
        save([result])
    return result


def refusing_taken_external_id():
    """Should the database refuse the external id (two requests found it free at once, and the
    other wrote first): CONFLICT, not a server error."""
    return refusing_duplicate(UNIQUE_EXTERNAL_ID, "A ticket with this external id exists already.")


def apply_create(ctx, data):
    """A new ticket in memory, written by `save`: requested by the actor unless an agent names
    another requester."""
    data = dict(data)
    if not is_agent(ctx.actor):
        if set(data) - REQUESTER_FIELDS:
            raise errors.PermissionDenied(
                "Only agents may set status, priority, category, assignee, requester or external id"
            )
    data.setdefault("requester_id", ctx.actor.pk)
    return Change(Ticket(**data), after=dict(data), created=True)


def create(ctx, data):
    """A new ticket (the single POST and the batch endpoint)."""
    change = apply_create(ctx, data)
    with refusing_taken_external_id(), transaction.atomic():
        save([change])
    return change.ticket


# --- categories ---------------------------------------------------------------------------


def check_can_change_categories(user):
    """Everyone reads categories; only agents add, rename or delete them."""
    if not is_agent(user):
        raise errors.PermissionDenied("Insufficient permissions to change categories")


def create_category(ctx, data):
    check_can_change_categories(ctx.actor)
    return Category.objects.create(**data)


def update_category(category, ctx, data):
    check_can_change_categories(ctx.actor)
    for name, value in data.items():
        setattr(category, name, value)
    category.save(update_fields=list(data))
    return category


def delete_category(category, ctx):
    """Delete a category no ticket uses (deleted ones included): clearing it would change them unaudited."""
    check_can_change_categories(ctx.actor)
    used = category.ticket_set.count()
    if used:
        raise errors.Conflict(f"Category {category.name!r} is set on {used} tickets; change them first")
    category.delete()


# --- undoing a bulk operation (bulkops revert) --------------------------------------------


@dataclass
class CommentRemoval(Change):
    """A Change that deletes comments: the undo of add_comment, written by `save_with_removals`."""

    removed: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.events or self.comments or self.removed)


def apply_revert(ticket, ctx, fields, *, expected_version, after=None):
    """Put back field values a bulk operation replaced, unless one of those fields changed
    since: `after` holds what the operation set (older items: the `expected_version` instead).

    Status transitions are not checked: an undo returns the ticket to a state it was in.
    `fields` are JSON values (as items store them), `is_deleted`/`deleted_at` included.
    """
    deletion = {"is_deleted", "deleted_at"} & set(fields)
    if deletion:
        check_can_delete(ctx.actor)
    if set(fields) - deletion:
        check_can_edit(ticket, ctx.actor, set(fields) - deletion)
    if after is None:
        _check_version(ticket, expected_version)
    else:
        check_unmoved(ticket, after, "Ticket")
    change, now = Change(ticket), timezone.now()
    for name, value in fields.items():
        _set(change, name, Ticket._meta.get_field(name).to_python(value), ctx, now)
    _bump(change, now)
    return change


def apply_remove_comment(ticket, ctx, comment_id):
    """Delete a comment a bulk operation added; `before` keeps its body so it can come back."""
    if ticket.is_deleted:
        raise errors.Conflict(f"Ticket {ticket.pk} was deleted since")
    comment = ticket.comments.filter(pk=comment_id).first()
    if comment is None:
        raise errors.Conflict(f"Comment {comment_id} is no longer on ticket {ticket.pk}")
    if not (is_agent(ctx.actor) or comment.author_id == ctx.actor.pk):
        raise errors.PermissionDenied("Insufficient permissions to delete comment")
    change = CommentRemoval(ticket, before={"comment": {"id": comment.pk, "body": comment.body}})
    change.removed.append(comment)
    return change


def save_with_removals(changes):
    """`save`, then delete the comments that CommentRemovals carry, in one statement."""
    save(changes)
    removed = [comment.pk for c in changes for comment in getattr(c, "removed", ())]
    if removed:
        Comment.objects.filter(pk__in=removed).delete()
