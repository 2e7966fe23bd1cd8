"""Set-based writes: a whole chunk of rows in one statement.

Django's bulk_update builds a CASE WHEN per row and field in Python (~1,000 rows/s). Here a
chunk's rows travel as ONE JSON document that PostgreSQL unpacks (`jsonb_to_recordset`):
`json.dumps` encodes them in C, where array parameters are quoted value by value in Python
(2.5 times slower for a chunk of 1,000 measured here, docs/benchmarks.md). Values are read
from the objects' attributes (`ticket_id`), so light rows do as well as model instances.
Other databases (the SQLite fallback of `make run`) go through the ORM's bulk methods.
"""

import datetime
import decimal
import json
import uuid
from functools import lru_cache

from django.db import connection
from django.utils import timezone


@lru_cache(maxsize=64)  # a chunk's rows share a few values: its `now`, the operation's id
def _encode(value):
    # Full precision: DjangoJSONEncoder would cut datetimes to milliseconds.
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def rows_json(rows):
    """Rows (dicts) as the one parameter of a `jsonb_to_recordset`."""
    return json.dumps(rows, default=_encode, separators=(",", ":"))


def _fields(model, names):
    return [model._meta.get_field(name) for name in names]


def _record_type(fields):
    """`v("id" bigint, "status" varchar(20), …)`: the columns `jsonb_to_recordset` yields."""
    return ", ".join(f'"{field.column}" {field.db_type(connection)}' for field in fields)


def _stamp(fields, objs, *, add):
    """auto_now (and on insert auto_now_add) fields get one `now` for the whole statement."""
    now = None
    for field in fields:
        if getattr(field, "auto_now", False) or add and getattr(field, "auto_now_add", False):
            now = now or timezone.now()
            for obj in objs:
                setattr(obj, field.attname, now)


def _rows(fields, objs):
    attnames = [(field.column, field.attname) for field in fields]
    return [{column: getattr(obj, attname) for column, attname in attnames} for obj in objs]


def update_rows(model, objs, fields):
    """Write `fields` of `objs` (already changed in memory) in one UPDATE."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields)
        return
    pk, fields = model._meta.pk, _fields(model, fields)
    _stamp(fields, objs, add=False)
    columns = ", ".join(f'"{field.column}" = v."{field.column}"' for field in fields)
    sql = (
        f'UPDATE "{model._meta.db_table}" AS t SET {columns} '
        f"FROM jsonb_to_recordset(%s::jsonb) AS v({_record_type([pk, *fields])}) "
        f'WHERE t."{pk.column}" = v."{pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows_json(_rows([pk, *fields], objs))])


def insert_rows(model, objs, fields, *, returning=True):
    """Insert `objs` in one statement, and set their primary keys unless `returning` is off."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    fields = _fields(model, fields)
    _stamp(fields, objs, add=True)
    columns = ", ".join(f'"{field.column}"' for field in fields)
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({columns}) '
        f"SELECT {columns} FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({_record_type(fields)})) "
        f"WITH ORDINALITY AS v({columns}, ord) ORDER BY v.ord"
    )
    pk = model._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(sql + (f' RETURNING "{pk.column}"' if returning else ""), [rows_json(_rows(fields, objs))])
        if not returning:
            return
        for obj, (new_pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = new_pk
            obj._state.adding = False
