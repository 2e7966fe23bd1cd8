"""Starting and cancelling operations: what the API, pages and admin call.

Reverting and retrying them is bulkops/followups.py; the helpers at the end are what the
domain apps' revert operations borrow."""

import hashlib
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import batched, repeat

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import conf, errors, jobs, registry, runner
from .models import APPROVE_PERMISSION, WAITING, BulkOperation, BulkOperationItem, Execution, ItemStatus, Mode, Status

log = logging.getLogger("bulkops")


@dataclass
class Request:
    """A validated request to change many records (the API serializer builds it)."""

    resource_type: str
    operation_type: str
    ids: list  # or a Selection
    operation_data: dict = field(default_factory=dict)
    payloads: list | None = None  # per-item data, when items differ
    metadata: dict = field(default_factory=dict)
    mode: str = Mode.PARTIAL
    execution: str = Execution.ASYNC
    batch_size: int | None = 50  # None: the engine sizes the chunks (bulkops.sizing)
    max_items_per_second: int | None = None
    dry_run: bool = False
    callback_url: str = ""
    reverts: BulkOperation | None = None
    retry_of: BulkOperation | None = None
    run_at: datetime | None = None  # not before then (scheduled)


def fingerprint(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def slice_count(total):
    """A few large slices: rq forks per job, so never one job per chunk."""
    return max(1, min(conf.MAX_SLICES, math.ceil(total / conf.SLICE_MIN_ITEMS)))


def slices_for(execution, mode, total):
    """A sync or atomic operation runs as one slice (in the request, in one transaction)."""
    return 1 if execution == Execution.SYNC or mode == Mode.ATOMIC else slice_count(total)


@dataclass
class Selection:
    """Records picked by a query (a `filter`, a retry's failed items), resolved inside
    PostgreSQL: the query's rows go straight into the items (`INSERT … SELECT`), never
    through Python lists."""

    queryset: object
    count: int  # as counted when the request was checked
    target: str = "pk"  # the column that becomes each item's target_id …
    order: str = "pk"  # … the one that orders the items …
    payload: str | None = None  # … and the one that becomes its payload, if any

    def __len__(self):
        return self.count

    def sql(self):
        """(SELECT of the rows as (target, order, payload), its parameters)."""
        columns = [self.target, self.order, *([self.payload] if self.payload else [])]
        query, params = self.queryset.order_by().values_list(*columns).query.sql_with_params()
        return query, params


@dataclass
class Stream:
    """Items computed row by row in Python (a revert's payloads), COPYed as they come so
    that a million of them never sit in one list. `count` bounds them; the operation counts
    what was written."""

    rows: object  # iterable of (target_id, payload)
    count: int

    def __len__(self):
        return self.count


COPY_BATCH = 50_000
ITEM_COLUMNS = "(operation_id, position, target_id, payload, status, error_code, error_message, attempts)"


def insert_items(op, ids, payloads=None):
    """All items in one statement or one COPY: 100,000 rows in well under a second.

    A Selection or a Stream may write fewer than it counted beforehand (rows gone since, items
    that needed nothing): the operation then counts what was written."""
    if isinstance(ids, Selection):
        written = select_items(op, ids)
    else:
        rows = ids.rows if isinstance(ids, Stream) else zip(ids, payloads or repeat(None), strict=False)
        written = copy_items(op, rows)
    if written != op.total_items:
        op.total_items = written
        op.slices = slices_for(op.execution, op.mode, written)
        op.save(update_fields=["total_items", "slices"])


def copy_items(op, rows):
    """The items of (target id, payload) rows, through COPY: no statement parameters to quote."""
    if connection.vendor != "postgresql":  # the embedded SQLite fallback of `make run`
        items = [
            BulkOperationItem(operation=op, position=n, target_id=str(t), payload=p) for n, (t, p) in enumerate(rows)
        ]
        return len(BulkOperationItem.objects.bulk_create(items))
    table, written = BulkOperationItem._meta.db_table, 0
    # The rows as COPY text, built by string formatting: psycopg's write_row adapts every
    # value of every row in Python, twice as slow for 100,000 items (docs/benchmarks.md).
    line = f"{op.pk}\t%d\t%s\t%s\t{ItemStatus.PENDING}\t\t\t0\n"
    with connection.cursor() as cursor:
        # One COPY per batch: `rows` may read the database as it goes (a revert's streamed
        # items), which it cannot do on this connection while a COPY is open.
        for batch in batched(rows, COPY_BATCH):
            text = []
            for target, payload in batch:
                payload = "\\N" if payload is None else copy_text(json.dumps(payload))
                text.append(line % (written, copy_text(str(target)), payload))
                written += 1
            with cursor.copy(f"COPY {table} {ITEM_COLUMNS} FROM STDIN") as copy:
                copy.write("".join(text))
    return written


def copy_text(value):
    """`value` as a field of COPY's text format, where a backslash starts an escape."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def select_items(op, selection):
    """The items of a query's rows, in order, with one `INSERT … SELECT`."""
    if connection.vendor != "postgresql":
        columns = [selection.target, *([selection.payload] if selection.payload else [])]
        rows = selection.queryset.order_by(selection.order).values_list(*columns)
        return copy_items(op, (row if selection.payload else (row[0], None) for row in rows))
    query, params = selection.sql()
    payload, columns = ("s.payload", "target, ord, payload") if selection.payload else ("NULL::jsonb", "target, ord")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BulkOperationItem._meta.db_table} {ITEM_COLUMNS} "
            "SELECT %s, row_number() OVER (ORDER BY s.ord) - 1, s.target::text, "
            f"{payload}, %s, '', '', 0 FROM ({query}) AS s({columns})",
            [op.pk, ItemStatus.PENDING, *params],
        )
        return cursor.rowcount


def find_idempotent(user, key, body_fingerprint):
    """The operation an earlier request with this key created, if within the window."""
    existing = BulkOperation.objects.filter(user=user, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.created_at < timezone.now() - timedelta(hours=conf.IDEMPOTENCY_HOURS):
        BulkOperation.objects.filter(pk=existing.pk).update(idempotency_key=None)  # expired: free the key
        return None
    if existing.fingerprint != body_fingerprint:
        raise errors.IdempotencyKeyReused()
    return existing


def lock_user(user):
    """Serialise a user's operation starts across processes, so that the active cap holds:
    lock the user's row, and count their active operations in the same statement."""
    active = BulkOperation.objects.filter(user=OuterRef("pk")).active().order_by().values("user")
    count = Coalesce(Subquery(active.annotate(n=Count("pk")).values("n")), 0)
    return get_user_model().objects.select_for_update().filter(pk=user.pk).values_list(count, flat=True).first()


def start_operation(user, request, *, idempotency_key=None, body_fingerprint=""):
    """Store the operation and its items; run it now (sync) or after commit (async).

    Returns (operation, created). The active-operation cap is checked under a lock on the
    user's row, so that it holds across processes.
    """
    with transaction.atomic():
        if request.execution == Execution.SYNC:
            defer_flush()
        op, created = create_operation(
            user,
            request,
            total_items=len(request.ids),
            idempotency_key=idempotency_key,
            body_fingerprint=body_fingerprint,
        )
        if not created:
            return op, False
        insert_items(op, request.ids, request.payloads)
        launch(op)
    return finish_launch(op), True


def defer_flush():
    """Commit this transaction without waiting for the WAL flush (~2.5 ms here), for a sync
    operation's creation: its request answers only after `finalize` has committed
    synchronously, which flushes this commit too. Should the database crash before that, the
    caller got no answer, and the operation is simply gone with its items."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")


def create_operation(user, request, *, total_items, idempotency_key=None, body_fingerprint=""):
    """The operation row (inside the caller's transaction), or the one an earlier request with
    the same Idempotency-Key made: (operation, created). Its items are the caller's to write."""
    active = lock_user(user)
    if idempotency_key:
        existing = find_idempotent(user, idempotency_key, body_fingerprint)
        if existing:
            return existing, False
    if active >= conf.MAX_ACTIVE_PER_USER:
        raise errors.TooManyActive()
    # A sync operation starts as it is created: its own request runs it (run_now), nothing else.
    now = timezone.now() if request.execution == Execution.SYNC else None
    op = BulkOperation.objects.create(
        status=Status.IN_PROGRESS if now else Status.PENDING,
        started_at=now,
        heartbeat_at=now,
        user=user,
        resource_type=request.resource_type,
        operation_type=request.operation_type,
        operation_data=request.operation_data,
        metadata=request.metadata,
        mode=request.mode,
        execution=request.execution,
        dry_run=request.dry_run,
        total_items=total_items,
        batch_size=request.batch_size,
        max_items_per_second=request.max_items_per_second,
        slices=slices_for(request.execution, request.mode, total_items),
        idempotency_key=idempotency_key or None,
        fingerprint=body_fingerprint,
        callback_url=request.callback_url,
        reverts=request.reverts,
        retry_of=request.retry_of,
        run_at=request.run_at,
    )
    return op, True


def launch(op):
    """Once the operation and all its items are written (inside the same transaction): it waits
    for approval, or is enqueued when it commits (at `run_at`, if it has one)."""
    if needs_approval(op):
        if op.execution == Execution.SYNC:  # the request cannot wait for another person
            raise errors.ValidationFailed(
                "This operation needs another person's approval: use execution async, then ask an approver."
            )
        op.status = Status.AWAITING_APPROVAL
        op.save(update_fields=["status"])
        log.info("operation awaits approval", extra={"operation_id": str(op.pk), "user_id": op.user_id})
        return
    enqueue_on_commit(op)


def enqueue_on_commit(op):
    """A scheduled operation waits for its time in rq's scheduler; any other starts at once."""
    if op.run_at is not None and op.run_at > timezone.now():
        op.status = Status.SCHEDULED
        op.save(update_fields=["status"])
    if op.execution != Execution.SYNC:
        transaction.on_commit(partial(jobs.enqueue_operation, op.pk, op.slices, op.run_at))


def needs_approval(op):
    """Four eyes (SPEC §13): a destructive type (delete), or as many items as the threshold,
    unless the creator is staff. A dry run changes nothing, so it needs nobody."""
    if op.user.is_staff or op.dry_run:
        return False
    definition = registry.get(op.resource_type, op.operation_type)
    threshold = conf.APPROVAL_THRESHOLD
    return bool(getattr(definition, "destructive", False) or (threshold and op.total_items >= threshold))


def finish_launch(op):
    """After the commit: log it, and run a sync operation here, in the request."""
    log.info(
        "operation created",
        extra={
            "operation_id": str(op.pk),
            "user_id": op.user_id,
            "operation_type": op.operation_type,
            "total_items": op.total_items,
        },
    )
    if op.execution == Execution.SYNC:
        run_now(op)
    return op


def run_now(op):
    """Process a synchronous operation inside the request, in this process: its one slice,
    on the instance in memory, which `finalize` leaves as the operation ends."""
    runner.run_slice(op.pk, 0, op=op)


def get_operation(user, op_id):
    """The operation `user` may act on as its owner (or staff)."""
    op = BulkOperation.objects.owned_by(user).filter(pk=op_id).first()
    if op is None:
        raise errors.NotFound("Bulk operation not found")
    return op


def cancel_operation(user, op_id):
    """Not started yet (pending, scheduled, awaiting approval) or paused ⇒ cancelled at once;
    running ⇒ cancelling (workers stop at the next chunk). A scheduled operation's jobs leave
    rq's scheduled registry once the cancel commits (should Redis fail then, they find nothing
    to start when they come due: runner.start)."""
    with transaction.atomic():
        op = BulkOperation.objects.owned_by(user).select_for_update().filter(pk=op_id).first()
        if op is None:
            raise errors.NotFound("Bulk operation not found")
        if op.is_finished:
            raise errors.Conflict(f"Operation already {op.status}")
        if op.status == Status.SCHEDULED:
            transaction.on_commit(partial(jobs.unschedule_operation, op.pk, op.slices))
        # Nothing runs a paused operation, but a slice may still be ending its last chunk:
        # skip_pending waits for that chunk's item locks, then skips what is still pending.
        was_pending = op.status in (*WAITING, Status.PAUSED)
        if op.status != Status.CANCELLING:
            op.status, op.cancelled_at = Status.CANCELLING, timezone.now()
            op.save(update_fields=["status", "cancelled_at"])
            log.info("operation cancelling", extra={"operation_id": str(op.pk), "user_id": user.pk})
    if was_pending:
        runner.skip_pending(op, 0, op.total_items)
        op = runner.finalize(op.pk)
    return op


# --- four eyes (SPEC §13) -----------------------------------------------------------------


def lock_for_review(user, op_id, verb):
    """The operation awaiting approval, locked: so that of two approvals (or an approval and a
    cancel) at once, one wins and the other finds it no longer awaiting (409). An approver
    may name any operation (one approved or cancelled meanwhile is a 409, not a 404); anyone
    else only those they see."""
    approver = user.has_perm(APPROVE_PERMISSION)
    scope = BulkOperation.objects.all() if approver else BulkOperation.objects.visible_to(user)
    op = scope.select_for_update(of=("self",)).filter(pk=op_id).first()
    if op is None:
        raise errors.NotFound("Bulk operation not found")
    if not approver:
        raise errors.PermissionDenied(f"You may not {verb} bulk operations")
    if op.user_id == user.pk:
        raise errors.PermissionDenied(f"Another person must {verb} your operation")
    if op.status != Status.AWAITING_APPROVAL:
        raise errors.Conflict(f"Operation is {op.status}, not awaiting approval")
    return op


def approve_operation(user, op_id):
    """awaiting_approval ⇒ pending (enqueued when this commits), or scheduled if its `run_at`
    is still ahead; the approver and the time are recorded."""
    with transaction.atomic():
        op = lock_for_review(user, op_id, "approve")
        op.status, op.approved_by, op.approved_at = Status.PENDING, user, timezone.now()
        op.save(update_fields=["status", "approved_by", "approved_at"])
        enqueue_on_commit(op)
        runner.announce(op)
    log.info("operation approved", extra={"operation_id": str(op.pk), "user_id": user.pk})
    return op


def reject_operation(user, op_id, reason=""):
    """awaiting_approval ⇒ cancelled, every item skipped with REJECTED, `reason` recorded."""
    with transaction.atomic():
        op = lock_for_review(user, op_id, "reject")
        op.status, op.cancelled_at, op.rejection_reason = Status.CANCELLING, timezone.now(), reason
        op.save(update_fields=["status", "cancelled_at", "rejection_reason"])
        runner.skip_pending(op, 0, op.total_items, errors.REJECTED, "Rejected by an approver")
        op = runner.finalize(op.pk)
        runner.announce(op)
    log.info("operation rejected", extra={"operation_id": str(op.pk), "user_id": user.pk})
    return op


# --- what the domain apps' revert operations borrow ------------------------------------


def restore_payload(before, result):
    """A revert item's data: the old field values, and what the record must still hold.

    None when the original item changed nothing there is to put back. `after` (the values the
    original set) makes the conflict rule per field; items recorded before it was kept carry
    only the version their record must still be at."""
    fields = {name: value for name, value in (before or {}).items() if name != "version"}
    if not fields or not (result or {}).get("changed"):
        return None
    payload = {"fields": fields, "version": result["version"]}
    if "after" in result:
        payload["after"] = result["after"]
    return payload


@contextmanager
def refusing_duplicate(constraint, message):
    """Around a transaction (or savepoint) that writes: should the database refuse the write
    by the unique `constraint` (two requests found a value free at once, and the other wrote
    first), fail CONFLICT with `message` instead of as a server error. The transaction inside
    has rolled back by then, so nothing else waits on it."""
    try:
        yield
    except IntegrityError as exc:
        if getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None) != constraint:
            raise
        raise errors.Conflict(message) from exc


def json_safe(values):
    """`values` as JSON would give them back (datetimes as text); the usual case costs nothing."""
    if all(value is None or isinstance(value, (str, int, bool)) for value in values.values()):
        return values
    return json.loads(json.dumps(values, cls=DjangoJSONEncoder))


def check_unmoved(record, after, noun):
    """Refuse a revert of `record` when a field the original operation set holds another value
    now: a later change to another field (a new title) does not stand in the way."""
    current = json_safe({name: getattr(record, name) for name in after})
    moved = sorted(name.removesuffix("_id") for name in after if current[name] != after[name])
    if moved:
        raise errors.Conflict(f"{noun} {record.pk}: {', '.join(moved)} changed since")


def replayed(user, idempotency_key, body_fingerprint):
    """The operation an earlier request with this Idempotency-Key made, before any other check."""
    return find_idempotent(user, idempotency_key, body_fingerprint) if idempotency_key else None
