"""Set-based writes: a whole chunk of rows in one statement; and `__any`, a chunk's ids as one
parameter.

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
from dataclasses import asdict
from functools import lru_cache

from django.db import connection
from django.db.models import Field
from django.db.models.lookups import In
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


def _columns(fields, objs):
    """(constant, varying): the values of a field that holds one value in every row are sent
    once, not once per row. A chunk's rows mostly share their status, timestamp, actor and
    operation: 1,000 ticket rows encode 4 times faster as {id, version} than as whole rows.

    A column counts as constant only when every value is equal and of the same type (`1` and
    `True` are equal in Python, not in SQL); JSON values, whose equality hides such
    differences deep inside, always vary. The first field (the key) always varies, so the
    rows keep their number and order."""
    constant, varying = {}, {}
    for n, field in enumerate(fields):
        values = [getattr(obj, field.attname) for obj in objs]
        first = values[0]
        if n and len(values) > 1 and field.get_internal_type() != "JSONField" and _same(values, first):
            constant[field] = first
        else:
            varying[field] = values
    return constant, varying


def _same(values, first):
    kind = type(first)
    return all(value == first and type(value) is kind for value in values)


def _sources(fields, objs):
    """(FROM clause, params, {field: its SQL value}) for `objs`: the varying columns from a
    `jsonb_to_recordset` named `v`, the constant ones from one `jsonb_to_record` named `c`."""
    constant, varying = _columns(fields, objs)
    columns = [field.column for field in varying]
    rows = [dict(zip(columns, row, strict=True)) for row in zip(*varying.values(), strict=True)]
    clause = f"ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({_record_type(varying)})) WITH ORDINALITY AS v"
    params = [rows_json(rows)]
    if constant:
        clause += f", jsonb_to_record(%s::jsonb) AS c({_record_type(constant)})"
        params.append(rows_json({field.column: value for field, value in constant.items()}))
    values = {field: f'{"c" if field in constant else "v"}."{field.column}"' for field in fields}
    return clause, params, values


def update_rows(model, objs, fields):
    """Write `fields` of `objs` (already changed in memory) in one UPDATE."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields)
        return
    pk, fields = model._meta.pk, _fields(model, fields)
    _stamp(fields, objs, add=False)
    source, params, values = _sources([pk, *fields], objs)
    columns = ", ".join(f'"{field.column}" = {values[field]}' for field in fields)
    sql = f'UPDATE "{model._meta.db_table}" AS t SET {columns} FROM {source} WHERE t."{pk.column}" = {values[pk]}'
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_rows(model, objs, fields, *, returning=True):
    """Insert `objs` in one statement, and set their primary keys unless `returning` is off."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        # Light rows (bulkops.audit.row_type) become instances: the ORM writes only those.
        model.objects.bulk_create([obj if isinstance(obj, model) else model(**asdict(obj)) for obj in objs])
        return
    fields = _fields(model, fields)
    _stamp(fields, objs, add=True)
    source, params, values = _sources(fields, objs)
    columns = ", ".join(f'"{field.column}"' for field in fields)
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({columns}) '
        f"SELECT {', '.join(values[field] for field in fields)} FROM {source} ORDER BY v.ordinality"
    )
    pk = model._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(sql + (f' RETURNING "{pk.column}"' if returning else ""), params)
        if not returning:
            return
        for obj, (new_pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = new_pk
            obj._state.adding = False


@Field.register_lookup
class AnyOf(In):
    """`field__any=values`: on PostgreSQL `field = ANY(%s::type[])`, the values as ONE array
    parameter; elsewhere the `__in` it extends. `__in` sends one placeholder per value, and
    psycopg splits the query at each and quotes each value in Python: for a chunk's 1,000 ids
    that took longer than locking the rows (docs/benchmarks.md)."""

    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection, prepared=True) for value in self.rhs]
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", [
            *params,
            array_literal(in_range(connection, field, values)),
        ]


def in_range(connection, field, values):
    """The values an integer column can hold: one outside its range matches no row (as with
    `__in`), where the array cast would refuse the whole query."""
    low, high = connection.ops.integer_field_ranges.get(field.get_internal_type(), (None, None))
    if low is None:
        return values
    return [value for value in values if value is None or low <= value <= high]


def array_literal(values):
    """PostgreSQL's text form of an array: numbers and UUIDs as they are, the rest quoted."""
    return "{" + ",".join(_element(value) for value in values) + "}"


def _element(value):
    if value is None:
        return "NULL"
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
