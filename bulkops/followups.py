"""Operations that follow another: revert and retry, each at most once per original."""

from django.db import transaction
from django.db.models import Count

from . import errors, registry
from .models import ACTIVE, BulkOperation, ItemStatus, Status
from .services import Request, Selection, Stream, get_operation, replayed, start_operation

REVERT = "revert"  # the operation each resource registers to undo its others


def check_finished(op, verb):
    if not op.is_finished:
        raise errors.Conflict(f"Operation is {op.status}; it can be {verb} once it has finished")


def lock_original(original, verb, followers):
    """Lock the original operation's row and refuse a second revert (or retry) of it.

    Under this lock, requests from any number of users and processes see each other: the
    first makes the follow-up, every other one gets 409 naming it. A follow-up that failed or
    was cancelled does not count, so it can be made again."""
    BulkOperation.objects.select_for_update().filter(pk=original.pk).first()
    earlier = done_follow_up(followers)
    if earlier is not None:
        raise errors.Conflict(f"Operation is already {verb} by {earlier.pk}")


def done_follow_up(followers):
    """The follow-up (revert or retry) among `followers` that counts as done: one that is not a
    dry run and did not fail or get cancelled. Pages hide the button once there is one."""
    return followers.filter(dry_run=False, status__in=[*ACTIVE, Status.COMPLETED, Status.PARTIAL]).first()


def revert_operation(
    user,
    op_id,
    *,
    metadata=None,
    callback_url="",
    dry_run=False,
    run_at=None,
    idempotency_key=None,
    body_fingerprint="",
):
    """A new async operation that puts back what `op_id` changed, item by item.

    Each item carries what to restore and the values its record must still hold; a record
    whose restored fields changed since fails CONFLICT. `dry_run` previews it: a dry-run
    revert reports what would be restored and what conflicts, and does not count as the
    revert. Returns (operation, created) as start_operation does."""
    existing = replayed(user, idempotency_key, body_fingerprint)
    if existing:
        return existing, False
    original = get_operation(user, op_id)
    check_finished(original, "reverted")
    if original.dry_run:
        raise errors.Conflict("A dry run changed nothing; there is nothing to revert")
    definition = registry.get(original.resource_type, REVERT)
    if definition is None:
        raise errors.Conflict(f"Operations on {original.resource_type} cannot be reverted")
    with transaction.atomic():
        lock_original(original, "reverted", original.reverted_by)
        request = revert_request(original, definition, metadata, callback_url, dry_run)
        request.run_at = run_at
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def revert_request(original, definition, metadata, callback_url, dry_run):
    """The revert of `original`: one item per succeeded item that changed something, streamed
    from the original's items into the new ones (a million never sit in a list)."""
    succeeded = original.items.filter(status=ItemStatus.SUCCEEDED)

    def rows():
        ordered = succeeded.order_by("position").values_list("target_id", "before", "result")
        for target_id, before, result in ordered.iterator(chunk_size=5000):
            payload = definition.resource.revert_payload(before or {}, result or {})
            if payload is not None:
                # an import's item names its record in its result
                yield str((result or {}).get("item_id") or target_id), payload

    if next(rows(), None) is None:  # stops at the first item that changed something
        raise errors.Conflict("Nothing to revert: no item of this operation changed anything")
    return Request(
        resource_type=original.resource_type,
        operation_type=REVERT,
        ids=Stream(rows(), succeeded.count()),
        metadata=metadata or {"description": f"Revert of bulk operation {original.pk}"},
        batch_size=original.batch_size,
        dry_run=dry_run,
        callback_url=callback_url,
        reverts=original,
    )


# Failures a retry can change: the record was busy, moved, missing or cancelled then. The
# others (PERMISSION_DENIED, INVALID_TRANSITION, VALIDATION_ERROR) fail the same way again
# unless something else changes first, so a retry takes them only when asked by `codes`.
RETRYABLE = (
    errors.LOCK_TIMEOUT,
    errors.CONFLICT,
    errors.INTERNAL_ERROR,
    errors.CANCELLED,
    errors.ROLLED_BACK,
    errors.NOT_FOUND,
)
RETRIED_STATUSES = (ItemStatus.FAILED, ItemStatus.SKIPPED)  # skipped: cancelled before their turn


def retry_choices(op):
    """{error code: item count} of what a retry of `op` could take, retryable codes first."""
    counts = dict(
        op.items.filter(status__in=RETRIED_STATUSES)
        .exclude(error_code="")
        .values_list("error_code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return dict(sorted(counts.items(), key=lambda pair: (pair[0] not in RETRYABLE, pair[0])))


def retry_operation(
    user, op_id, *, metadata=None, callback_url="", codes=None, run_at=None, idempotency_key=None, body_fingerprint=""
):
    """A new async operation over the items of `op_id` that failed with one of `codes`
    (default RETRYABLE): same type and data. 409 when no item matches."""
    existing = replayed(user, idempotency_key, body_fingerprint)
    if existing:
        return existing, False
    original = get_operation(user, op_id)
    check_finished(original, "retried")
    if registry.get(original.resource_type, original.operation_type) is None:
        raise errors.Conflict(f"{original.operation_type} operations on {original.resource_type} cannot be retried")
    with transaction.atomic():
        lock_original(original, "retried", original.retried_by)
        request = retry_request(original, metadata, callback_url, codes or RETRYABLE)
        request.run_at = run_at
        return start_operation(user, request, idempotency_key=idempotency_key, body_fingerprint=body_fingerprint)


def retry_request(original, metadata, callback_url, codes):
    """The retry of `original`: its items that failed with one of `codes`, same type and data,
    copied inside PostgreSQL (`INSERT … SELECT`), however many there are."""
    failed = original.items.filter(status__in=RETRIED_STATUSES, error_code__in=codes)
    count = failed.count()
    if not count:
        raise errors.Conflict(f"Nothing to retry: no item of this operation failed with {', '.join(sorted(codes))}")
    return Request(
        resource_type=original.resource_type,
        operation_type=original.operation_type,
        ids=Selection(failed, count, target="target_id", order="position", payload="payload"),
        operation_data=original.operation_data,
        metadata=metadata or original.metadata,
        mode=original.mode,
        batch_size=original.batch_size,
        dry_run=original.dry_run,
        callback_url=callback_url,
        retry_of=original,
    )
