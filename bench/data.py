"""The bench's data, written and reset with set-based SQL (seeding 100,000 tickets takes a second)."""

import threading

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from rest_framework.authtoken.models import Token

from bulkops.models import BulkOperation, BulkOperationItem
from metrics.models import Metric
from tickets.models import Ticket, TicketEvent


def insert_series(model, count, overrides):
    """INSERT … SELECT generate_series: `overrides` {column: (sql, params)}; every other column
    gets its field's default, so that a field added to the model later does not break the bench."""
    columns, selects, params = [], [], []
    for field in model._meta.concrete_fields:
        if field.column in overrides:
            expression, values = overrides[field.column]
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            expression, values = "now()", []
        elif field.primary_key:
            continue  # a serial key numbers itself
        else:
            expression, values = "%s", [field.get_db_prep_save(field.get_default(), connection)]
        columns.append(connection.ops.quote_name(field.column))
        selects.append(expression)
        params += values
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
            f"SELECT {', '.join(selects)} FROM generate_series(1, %s) AS g ORDER BY g",
            [*params, count],
        )


def seed(tickets, metrics):
    """An agent (may change every ticket) who owns the metrics; returns (user, token key)."""
    agent = get_user_model().objects.create_user("bench-agent", password=None)
    agent.user_permissions.add(Permission.objects.get(content_type__app_label="tickets", codename="change_ticket"))
    token = Token.objects.create(user=agent)
    with transaction.atomic():
        insert_series(Ticket, tickets, {"title": ("'Bench ticket ' || g", []), "requester_id": ("%s", [agent.pk])})
        insert_series(
            Metric,
            metrics,
            {"id": ("gen_random_uuid()", []), "name": ("'Bench metric ' || g", []), "owner_id": ("%s", [agent.pk])},
        )
    vacuum()
    return agent, token.key


def ticket_ids():
    return list(Ticket.objects.order_by("pk").values_list("pk", flat=True))


def metric_ids():
    return [str(pk) for pk in Metric.objects.order_by("name").values_list("pk", flat=True)]


def reset_tickets(ids):
    """Every ticket back to `open`, so that each run makes the same change to each."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Ticket._meta.db_table} SET status = 'open' WHERE id = ANY(%s) AND status <> 'open'", [ids]
        )


def reset_metrics(ids):
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Metric._meta.db_table} SET verification = 'not_requested' WHERE id = ANY(%s::uuid[])", [ids]
        )


def vacuum():
    """Between runs, so that no run pays for the dead rows of the one before."""
    tables = [model._meta.db_table for model in (Ticket, TicketEvent, Metric, BulkOperationItem)]
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")


def set_based_update(ids, actor_id, with_audit):
    """The physical limit: the same change as one statement (plus one INSERT for the audit rows)."""
    update = (
        f"UPDATE {Ticket._meta.db_table} SET status = 'in_progress', version = version + 1, updated_at = now() "
        "WHERE id = ANY(%s)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if not with_audit:
            cursor.execute(update, [ids])
            return
        cursor.execute(
            f"WITH changed AS ({update} RETURNING id) "
            f"INSERT INTO {TicketEvent._meta.db_table} "
            "(ticket_id, actor_id, field, old_value, new_value, reason, created_at) "
            "SELECT id, %s, 'status', 'open', 'in_progress', '', now() FROM changed",
            [ids, actor_id],
        )


def pending_operation(user, ids):
    """An operation over `ids` with every item pending, made without the API: no job is queued,
    and, marked finished, no worker's recovery takes it up."""
    op = BulkOperation.objects.create(
        user=user,
        resource_type="tickets",
        operation_type="update_status",
        operation_data={"status": "in_progress"},
        total_items=len(ids),
        status="completed",
    )
    insert_series(
        BulkOperationItem,
        len(ids),
        {"operation_id": ("%s", [op.pk]), "position": ("g - 1", []), "target_id": ("(%s::bigint[])[g]::text", [ids])},
    )
    return op


CHUNK_WRITES = [
    "SELECT id, target_id::bigint FROM {items} WHERE operation_id = %(op)s AND status = 'pending' "
    "AND position >= %(lo)s ORDER BY position LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
    "SELECT * FROM {tickets} WHERE id = ANY(%(tickets)s) ORDER BY id FOR UPDATE",
    "WITH changed AS (UPDATE {tickets} SET status = 'in_progress', version = version + 1, updated_at = now() "
    "WHERE id = ANY(%(tickets)s) RETURNING id, version) "
    "INSERT INTO {events} (ticket_id, actor_id, bulk_operation_id, field, old_value, new_value, reason, created_at) "
    "SELECT id, %(actor)s, %(op)s, 'status', 'open', 'in_progress', '', now() FROM changed",
    "UPDATE {items} SET status = 'succeeded', attempts = attempts + 1, processed_at = now(), "
    "before = jsonb_build_object('status', 'open', 'version', 1), "
    "result = jsonb_build_object('changed', true, 'version', 2, 'after', jsonb_build_object('status', 'in_progress')) "
    "WHERE id = ANY(%(items)s)",
    "UPDATE {operations} SET processed_items = processed_items + %(n)s, successful_items = successful_items + %(n)s, "
    "heartbeat_at = now() WHERE id = %(op)s",
]


def engine_writes(op, ids, actor_id, chunk=1_000, connections=1):
    """What the engine must write for `ids`, set-based and with no Python per item: per chunk
    of 1,000, one transaction that claims the items, locks the tickets, updates them with their
    audit rows and records each item's outcome and the counters. No per-item engine can beat
    it while it keeps the per-item outcomes, the audit rows and the locks.

    `connections` > 1: as many threads at once, each with its own connection and every n-th
    chunk, as that many workers share an operation (they too wait for each other on the
    operation's row, to add to its counters)."""
    starts = range(0, len(ids), chunk)
    if connections == 1:
        write_chunks(op, actor_id, chunk, starts)
        return
    failures = []

    def share(number):
        try:
            write_chunks(op, actor_id, chunk, starts[number::connections])
        except Exception as exc:  # noqa: BLE001 - raised again in the calling thread
            failures.append(exc)
        finally:
            connection.close()  # this thread's own

    threads = [threading.Thread(target=share, args=(number,)) for number in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def write_chunks(op, actor_id, chunk, starts):
    tables = {
        "items": BulkOperationItem._meta.db_table,
        "tickets": Ticket._meta.db_table,
        "events": TicketEvent._meta.db_table,
        "operations": BulkOperation._meta.db_table,
    }
    claim, *writes = [statement.format(**tables) for statement in CHUNK_WRITES]
    for lo in starts:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(claim, {"op": op.pk, "lo": lo, "limit": chunk})
            items, tickets = zip(*cursor.fetchall(), strict=True)
            params = {"op": op.pk, "items": list(items), "tickets": list(tickets), "actor": actor_id, "n": len(items)}
            for statement in writes:
                cursor.execute(statement, params)


def item_count():
    return BulkOperationItem.objects.count()
