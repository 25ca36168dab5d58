"""Fast inserts and key lookups for many rows of one model: COPY and `= ANY(array)` on PostgreSQL, a
single executemany and `IN (...)` elsewhere.

Ingest writes tens of thousands of items a second; building a model instance per row and letting
`bulk_create` prepare every value costs more than the database does (bench/ingest.py measures both).
Here the caller passes plain column values for the fields it sets and every other concrete field gets
its default, prepared once per call, so a field added to the model later is still filled in. Callers
serialise JSON themselves (`json_value`) and read generated ids back by a unique key (`select_in`).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from core.replicas import read_alias

try:
    import psycopg
except ImportError:  # SQLite-only installs
    psycopg = None


def json_value(value: Any) -> str:
    """A JSONField value as the database stores it (what JSONField.get_prep_value would send)."""
    return json.dumps(value)


def datetime_value(value: datetime) -> Any:
    return value if connection.vendor == "postgresql" else connection.ops.adapt_datetimefield_value(value)


def insert_rows(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]], *,
    now: datetime) -> None:
    """Insert `rows` (values for `fields`, in order, already in database form) into `model`'s table.

    The primary key is generated. Other concrete fields not in `fields` get `now` if they are
    auto_now/auto_now_add, else their default (a callable default is called per row). Must run inside
    the caller's transaction."""
    columns, per_row, constants = _layout(model, fields, now)
    if per_row:
        rows = [(*row, *(_default(f, now) for f in per_row)) for row in rows]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    column_list = ", ".join(qn(f.column) for f in columns)
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


def _layout(model: type[models.Model], fields: Sequence[str], now: datetime
            ) -> tuple[list[models.Field], list[models.Field], tuple[Any, ...]]:
    """How insert_rows and insert_rows_returning_ids complete a row of `fields`: (every column written, in
    order: `fields`, then the fields whose callable default is called per row, then the rest; the per-row
    fields; the rest's values, the same for every row). The primary key is left to the caller."""
    meta = model._meta
    given = [meta.get_field(name) for name in fields]
    rest = [f for f in meta.concrete_fields if not f.primary_key and f.name not in fields and f.attname not in fields]
    # A callable default (a uuid, say) must differ per row; such fields are rare, so the common path
    # appends one prepared tuple of constants.
    per_row = [f for f in rest if f.has_default() and callable(f.default) and f.default not in (dict, list)]
    rest = [f for f in rest if f not in per_row]
    return [*given, *per_row, *rest], per_row, tuple(_default(f, now) for f in rest)


def _default(field: models.Field, now: datetime) -> Any:
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return datetime_value(now)
    value = field.get_default()
    if isinstance(field, models.JSONField):
        return json_value(value) if value is not None else None
    return field.get_db_prep_save(value, connection)


def select_in(model: type[models.Model], fields: Sequence[str], *, key: str, values: Sequence[Any],
              where: Mapping[str, Any] | None = None, using: str | None = None) -> list[tuple]:
    """`fields` of the rows whose `key` is one of `values` and whose `where` fields equal the given values;
    JSON fields come back decoded.

    On PostgreSQL the values travel as one array parameter: the ORM's `__in` with thousands of
    placeholders spends longer in client-side query parsing than the database spends answering.
    `using`: the database alias; by default the one reads go to here (core.replicas.read_alias)."""
    if not values:
        return []
    meta = model._meta
    qn = connection.ops.quote_name
    selected = [meta.get_field(name) for name in fields]
    conditions, params = [], []
    for name, value in (where or {}).items():
        conditions.append(f"{qn(meta.get_field(name).column)} = %s")
        params.append(value)
    condition, values_params = one_of(qn(meta.get_field(key).column), values)
    conditions.append(condition)
    params.extend(values_params)
    sql = (f"SELECT {', '.join(qn(f.column) for f in selected)} FROM {qn(meta.db_table)} "
           f"WHERE {' AND '.join(conditions)}")
    with connections[using or read_alias()].cursor() as cursor:
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


def one_of(column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """SQL (and parameters) true when `column` is one of `values`: one array parameter on PostgreSQL (one
    statement text whatever the number, so it can be prepared), `IN (...)` elsewhere."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def columns(model: type[models.Model], alias: str = "") -> str:
    """Every concrete column of `model`, in field order, for a hand-written SELECT or RETURNING whose
    rows model_from_row reads (prefixed with `alias.` when given)."""
    return _columns(model, alias, connection.vendor)


@functools.cache
def _columns(model: type[models.Model], alias: str, vendor: str) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(prefix + connection.ops.quote_name(f.column) for f in model._meta.concrete_fields)


def model_from_row(model: type[models.Model], row: Sequence[Any], *, using: str | None = None) -> models.Model:
    """A `model` instance from a row of its `columns(model)`, converted as the ORM's own queries would
    (SQLite returns datetimes as text and JSON as a string, for instance). `using`: the alias the row was
    read from (by default core.replicas.read_alias)."""
    db = connections[using or read_alias()]
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, col, converters in _converters(model, db):
        for converter in converters:
            values[index] = converter(values[index], col, db)
    return model.from_db(db.alias, [f.attname for f in fields], values)


def model_value(model: type[models.Model], name: str, value: Any, *, using: str | None = None) -> Any:
    """One column's raw value as the ORM would give it for `model`'s field `name` (model_from_row's
    converters, for that column alone)."""
    db = connections[using or read_alias()]
    index = model._meta.concrete_fields.index(model._meta.get_field(name))
    for at, col, converters in _converters(model, db):
        if at == index:
            for converter in converters:
                value = converter(value, col, db)
    return value


_CONVERTERS: dict[tuple[str, str], list[tuple[int, Any, list[Any]]]] = {}


def _converters(model: type[models.Model], db: Any) -> list[tuple[int, Any, list[Any]]]:
    """(column index, column expression, converters) for the columns of `model` that need converting on
    connection `db`: the backend's converters, then the field's, as the ORM's compiler applies them."""
    key = (db.vendor, model._meta.label)
    found = _CONVERTERS.get(key)
    if found is None:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            col = field.get_col(model._meta.db_table)
            converters = [*db.ops.get_db_converters(col), *col.get_db_converters(db)]
            if converters:
                found.append((index, col, converters))
        _CONVERTERS[key] = found
    return found


@contextmanager
def prepared_cursor(using: str | None = None) -> Iterator[Any]:
    """A cursor for hand-written statements that run on every request: on PostgreSQL (unless
    settings.DB_PREPARED_STATEMENTS is off) each statement is prepared on first use and afterwards only
    executed, which skips the planning that otherwise costs more than running it. Elsewhere, or with the
    setting off, Django's ordinary cursor. Either way queries are logged and wrapped like any other.
    `using`: the database alias; by default the one reads go to here (core.replicas.read_alias), which is
    the primary outside a dashboard or export; a statement that writes passes the primary explicitly."""
    # The connection itself, not the `connection` proxy: each attribute read through that costs a lookup.
    db = connections[using or read_alias()]
    if _PreparingCursor is None or db.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        with db.cursor() as cursor:
            yield cursor
        return
    db.ensure_connection()
    raw = _PreparingCursor(db.connection)
    cursor = _LoggedPreparedCursor(raw, db) if db.queries_logged else db.make_cursor(raw)
    with cursor:
        yield cursor


if psycopg is not None:
    from django.db.backends.postgresql.base import CursorDebugWrapper

    class _PreparingCursor(psycopg.Cursor):
        """Binds parameters on the server (Django's default cursor binds on the client, and such
        statements cannot be prepared) and prepares every statement."""

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            return super().execute(query, params, prepare=True)

    class _LoggedPreparedCursor(CursorDebugWrapper):
        """Django's query log for a _PreparingCursor: logs the statement with its values in place (the
        backend can only recover that from cursors that bind on the client)."""

        def execute(self, sql: str, params: Any = None) -> Any:
            with self.debug_sql(self.db.ops.compose_sql(sql, params)):
                return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)

else:
    _PreparingCursor = _LoggedPreparedCursor = None


# Up to this many rows insert_objects sends one prepared INSERT ... RETURNING; more go by COPY.
FEW_ROWS = 8


def insert_objects(objs: Sequence[models.Model]) -> list[models.Model]:
    """Save new instances of one model and set their primary keys, as bulk_create does, each value prepared
    by its field as for the ORM (pre_save, then get_db_prep_save). On PostgreSQL a few rows (every submit
    inserts one routing decision) go by one prepared INSERT ... RETURNING, and many (routing a batch) by
    COPY, their keys drawn from the table's sequence first: bulk_create binds every value of a large batch
    on the client, which cost more than routing it. Elsewhere bulk_create."""
    if not objs:
        return []
    model = type(objs[0])
    if connection.vendor != "postgresql":
        return model.objects.bulk_create(objs)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    qn = connection.ops.quote_name
    table, column_list = qn(meta.db_table), ", ".join(qn(f.column) for f in fields)
    db = connections[DEFAULT_DB_ALIAS]  # not the `connection` proxy: fields read it once per value
    rows = [[f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields] for obj in objs]
    if len(objs) <= FEW_ROWS:
        placeholders = f"({', '.join(['%s'] * len(fields))})"
        with prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({column_list}) VALUES {', '.join([placeholders] * len(objs))}"
                f" RETURNING {qn(meta.pk.column)}",
                [value for row in rows for value in row],
            )
            ids = [pk for (pk,) in cursor.fetchall()]
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(objs)],
            )
            ids = [pk for (pk,) in cursor.fetchall()]
            with cursor.cursor.copy(f"COPY {table} ({qn(meta.pk.column)}, {column_list}) FROM STDIN") as copy:
                for pk, row in zip(ids, rows):
                    copy.write_row((pk, *row))
    for obj, pk in zip(objs, ids):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
    return list(objs)


def insert_rows_returning_ids(model: type[models.Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], *,
    now: datetime) -> list[int]:
    """`insert_rows`, returning the new rows' primary keys in row order (to point other rows at them).

    On PostgreSQL the keys are drawn from the table's sequence first and the rows go by COPY with them, as
    insert_objects does; elsewhere by multi-row INSERT ... RETURNING in batches of the backend's size."""
    if not rows:
        return []
    meta = model._meta
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            ids = [pk for (pk,) in cursor.fetchall()]
        insert_rows(model, [meta.pk.name, *fields], [(pk, *row) for pk, row in zip(ids, rows)], now=now)
        return ids
    columns, per_row, constants = _layout(model, fields, now)
    qn = connection.ops.quote_name
    column_list = ", ".join(qn(f.column) for f in columns)
    width = len(columns)
    batch = max(1, connection.ops.bulk_batch_size(columns, rows))
    ids = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            placeholders = ", ".join([f"({', '.join(['%s'] * width)})"] * len(part))
            cursor.execute(
                f"INSERT INTO {qn(meta.db_table)} ({column_list}) VALUES {placeholders} RETURNING {qn(meta.pk.column)}",
                [value for row in part for value in (*row, *(_default(f, now) for f in per_row), *constants)],
            )
            ids += [pk for (pk,) in cursor.fetchall()]
    return ids
