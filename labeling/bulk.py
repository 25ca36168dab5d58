"""Fast inserts and key lookups for many rows of one model: COPY and `= ANY(array)` on PostgreSQL, a
single executemany and `IN (...)` elsewhere.

Ingest writes tens of thousands of items a second; building a model instance per row and letting
`bulk_create` prepare every value costs more than the database does (bench/ingest.py measures both).
Here the caller passes plain column values for the fields it sets and every other concrete field gets
its default, prepared once per call, so a field added to the model later is still filled in. Callers
serialise JSON themselves (`json_value`) and read generated ids back by a unique key (`select_in`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, models


def json_value(value: Any) -> str:
    """A JSONField value as the database stores it (what JSONField.get_prep_value would send)."""
    return json.dumps(value)


def datetime_value(value: datetime) -> Any:
    return value if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(value)


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]], *, now: datetime) -> None:
    """Insert `rows` (values for `fields`, in order, already in database form) into `model`'s table.

    The primary key is generated. Other concrete fields not in `fields` get `now` if they are
    auto_now/auto_now_add, else their default (a callable default is called per row). Must run inside
    the caller's transaction."""
    meta = model._meta
    given = [meta.get_field(name) for name in fields]
    rest = [f for f in meta.concrete_fields if not f.primary_key and f.name not in fields and f.attname not in fields]
    # A callable default (a uuid, say) must differ per row; such fields are rare, so the common path
    # appends one prepared tuple of constants.
    per_row = [f for f in rest if f.has_default() and callable(f.default) and f.default not in (dict, list)]
    rest = [f for f in rest if f not in per_row]
    if per_row:
        rows = [(*row, *(_default(f, now) for f in per_row)) for row in rows]
        given += per_row
    constants = tuple(_default(f, now) for f in rest)
    columns = [f.column for f in given] + [f.column for f in rest]
    qn = connection.ops.quote_name
    table = qn(meta.db_table)
    column_list = ", ".join(qn(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY is several times faster than a multi-row INSERT and needs no per-value placeholders.
            with cursor.cursor.copy(f"COPY {table} ({column_list}) FROM STDIN") as copy:
                write = copy.write_row
                if constants:
                    for row in rows:
                        write((*row, *constants))
                else:
                    for row in rows:
                        write(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({column_list}) VALUES ({placeholders})",
                [(*row, *constants) for row in rows] if constants else list(rows),
            )


def _default(field: models.Field, now: datetime) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return datetime_value(now)
    value = field.get_default()
    if isinstance(field, models.JSONField):
        return json_value(value) if value is not None else None
    return field.get_db_prep_save(value, connection)


def select_in(model: type[models.Model], fields: Sequence[str], *, key: str, values: Sequence[Any],
              where: Mapping[str, Any] | None = None) -> list[tuple]:
    """`fields` of the rows whose `key` is one of `values` and whose `where` fields equal the given values;
    JSON fields come back decoded.

    On PostgreSQL the values travel as one array parameter: the ORM's `__in` with thousands of
    placeholders spends longer in client-side query parsing than the database spends answering."""
    if not values:
        return []
    meta = model._meta
    qn = connection.ops.quote_name
    selected = [meta.get_field(name) for name in fields]
    conditions, params = [], []
    for name, value in (where or {}).items():
        conditions.append(f"{qn(meta.get_field(name).column)} = %s")
        params.append(value)
    key_column = qn(meta.get_field(key).column)
    if connection.vendor == "postgresql":
        conditions.append(f"{key_column} = ANY(%s)")
        params.append(list(values))
    else:
        conditions.append(f"{key_column} IN ({', '.join(['%s'] * len(values))})")
        params.extend(values)
    sql = (f"SELECT {', '.join(qn(f.column) for f in selected)} FROM {qn(meta.db_table)} "
           f"WHERE {' AND '.join(conditions)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    json_positions = [i for i, f in enumerate(selected) if isinstance(f, models.JSONField)]
    if not json_positions:
        return rows
    decoded = []
    for row in rows:
        row = list(row)
        for i in json_positions:
            if isinstance(row[i], str):
                row[i] = json.loads(row[i])
        decoded.append(tuple(row))
    return decoded
