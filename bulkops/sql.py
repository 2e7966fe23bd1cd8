"""Set-based writes: a whole chunk of rows in one statement.

Django's bulk_update builds a CASE WHEN per row and field in Python (~1,000 rows/s);
`UPDATE … FROM unnest(…)` writes the same rows in a few milliseconds. Other databases
(the SQLite fallback of `make run`) go through the ORM's bulk methods.
"""

import json

from django.db import connection


def _array_type(field):
    if field.get_internal_type() == "JSONField":
        return "text", "::jsonb"
    db_type = field.db_type(connection)
    if db_type.startswith("varchar"):
        return "text", ""
    return db_type, ""


def _column(model, name):
    field = model._meta.get_field(name)
    return field, field.column


def _values(field, objs, add):
    # psycopg adapts the Python values of these columns itself; only JSON needs encoding.
    if field.get_internal_type() == "JSONField":
        return [None if (v := field.pre_save(obj, add)) is None else json.dumps(v, cls=field.encoder) for obj in objs]
    return [field.pre_save(obj, add) for obj in objs]


def update_rows(model, objs, fields):
    """Write `fields` of `objs` (already changed in memory) in one UPDATE."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields)
        return
    pk = model._meta.pk
    columns, arrays, params = [], [f"%s::{pk.db_type(connection)}[]"], [[obj.pk for obj in objs]]
    for name in fields:
        field, column = _column(model, name)
        sql_type, cast = _array_type(field)
        columns.append(f'"{column}" = v."{column}"{cast}')
        arrays.append(f"%s::{sql_type}[]")
        params.append(_values(field, objs, add=False))
    names = ", ".join([f'"{pk.column}"'] + [f'"{_column(model, n)[1]}"' for n in fields])
    sql = (
        f'UPDATE "{model._meta.db_table}" AS t SET {", ".join(columns)} '
        f'FROM unnest({", ".join(arrays)}) AS v({names}) WHERE t."{pk.column}" = v."{pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert_rows(model, objs, fields):
    """Insert `objs` in one statement and set their primary keys."""
    if not objs:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs)
        return
    pk = model._meta.pk
    columns, arrays, selects, params = [], [], [], []
    for name in fields:
        field, column = _column(model, name)
        sql_type, cast = _array_type(field)
        columns.append(f'"{column}"')
        arrays.append(f"%s::{sql_type}[]")
        selects.append(f'v."{column}"{cast}')
        params.append(_values(field, objs, add=True))
    sql = (
        f'INSERT INTO "{model._meta.db_table}" ({", ".join(columns)}) '
        f"SELECT {', '.join(selects)} FROM unnest({', '.join(arrays)}) WITH ORDINALITY "
        f'AS v({", ".join(columns)}, ord) ORDER BY v.ord RETURNING "{pk.column}"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for obj, (new_pk,) in zip(objs, cursor.fetchall(), strict=True):
            obj.pk = new_pk
            obj._state.adding = False
