"""Idempotent bulk inserts: ``INSERT … ON CONFLICT DO NOTHING`` for many rows at once.

Pushes insert tens of thousands of rows that may already exist (content is
shared and clients over-send). Inside a transaction on PostgreSQL a batch of
at least ``COPY_MIN_ROWS`` rows goes by ``COPY``: one query finds the rows
already there, and the others are copied straight into the table (a push of
25,000 new blobs: 1.5 s of the database's time on the benchmark machine,
the commit included, instead of 2.5 s). Should a concurrent transaction insert one of
them meanwhile, the batch is streamed into a temporary table instead and moved
with one ``INSERT … SELECT … ON CONFLICT DO NOTHING``. Smaller batches, and
SQLite (3.24+ understands ``ON CONFLICT``), take one parametrised
``executemany``. ``bulk_create`` would split either into batches of a few
hundred rows.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterable, Sequence

from django.db import connection, models, transaction

from repos.lookups import any_parameter, any_sql

_PREPARED = {"JSONField", "DateTimeField", "BinaryField", "UUIDField"}
_staging_names = itertools.count()
_UNSET = object()
# Below this many rows one executemany is cheaper than creating a staging table (small pushes stay light).
COPY_MIN_ROWS = 1_000


def _key_positions(model: type[models.Model], fields: Sequence[str]) -> list[int]:
    """Return the positions in *fields* of the columns that identify a row (its unique constraint, else its key)."""
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and all(f in fields for f in constraint.fields):
            return [fields.index(f) for f in constraint.fields]
    names = {model._meta.pk.name, model._meta.pk.attname}
    return [i for i, f in enumerate(fields) if f in names] or [0]


def _preparer(field: models.Field) -> Callable[[object], object]:
    """Return *field*'s value preparation, done once for a run of the same value (a push's one ``created_at``)."""
    last_value: object = _UNSET
    last_prepared: object = None

    def prepare(value: object) -> object:
        nonlocal last_value, last_prepared
        if value is not last_value:
            last_value, last_prepared = value, field.get_db_prep_save(value, connection)
        return last_prepared

    return prepare


def insert_ignore(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Insert *rows* (values in *fields* order) into *model*'s table, skipping rows that already exist.

    Rows go in key order, so two transactions inserting overlapping rows (pushes
    of shared content into two repositories) take their locks in the same order
    and cannot deadlock each other. Return how many rows were inserted (those
    that already existed do not count).
    """
    meta_fields = [_column(model, name) for name in fields]
    prepare = [_preparer(f) if f.get_internal_type() in _PREPARED else None for f in meta_fields]
    keys = _key_positions(model, fields)
    batch = _prepared(list(rows), prepare, len(fields))
    if not batch:
        return 0
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [quote(f.column) for f in meta_fields]
    if connection.vendor == "postgresql" and connection.in_atomic_block and len(batch) >= COPY_MIN_ROWS:
        return _copy_insert(table, columns, keys, batch)
    batch.sort(key=_sort_key(keys))
    marks = ", ".join(["%s"] * len(meta_fields))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)
        return cursor.rowcount


def _column(model: type[models.Model], name: str) -> models.Field:
    """Return *model*'s field *name*, which must be a column of its table (not a reverse or generic relation)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


def _sort_key(keys: Sequence[int]) -> Callable[[tuple], str | tuple[str, ...]]:
    """Return the key that sorts rows by their key columns as text (one column: no tuple per row)."""
    if len(keys) == 1:
        (only,) = keys
        return lambda row: str(row[only])
    return lambda row: tuple(str(row[i]) for i in keys)


def _prepared(
    rows: list[Sequence[object]], prepare: list[Callable[[object], object] | None], width: int
) -> list[tuple]:
    """Return *rows* as tuples with the values of the columns that need it prepared for the database."""
    if any(len(row) != width for row in rows):
        raise ValueError(f"a row has not {width} values, one per column")
    positions = [(i, p) for i, p in enumerate(prepare) if p is not None]
    if not positions:
        return [row if type(row) is tuple else tuple(row) for row in rows]
    batch = []
    for row in rows:
        values = list(row)
        for i, prep in positions:
            values[i] = prep(values[i])
        batch.append(tuple(values))
    return batch


def _copy_insert(table: str, columns: list[str], keys: list[int], batch: list[tuple]) -> int:
    """Insert the rows of *batch* that are new with COPY; return how many were inserted.

    The rows already in the table are found with one query and left out; the
    others are copied straight into the table, in key order, inside a
    savepoint. That holds unless another transaction inserts one of them
    meanwhile (a concurrent push of the same content): then the savepoint is
    rolled back and the batch goes through :func:`_staged_insert`, which skips
    whatever exists. A straight COPY saves the staging table's second pass,
    about half of the database's time for a push of new blobs.
    """
    new = _new_rows(table, columns, keys, batch)
    if new is not None:
        if not new:
            return 0
        new.sort(key=operator.itemgetter(*keys))
        import psycopg  # the PostgreSQL driver; only this backend gets here

        try:
            with transaction.atomic(), connection.cursor() as cursor:
                _copy(cursor, table, ", ".join(columns), new)
            return len(new)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            pass  # inserted meanwhile by another transaction: the savepoint is rolled back
    return _staged_insert(table, columns, batch, ", ".join(columns[i] for i in keys))


def _new_rows(table: str, columns: list[str], keys: list[int], batch: list[tuple]) -> list[tuple] | None:
    """Return the rows of *batch* whose key is not in *table* yet (each key once), or None if one query cannot tell.

    One query tells when the key varies in at most one column across the batch
    (an object id; a repository's object ids; a pack's entries), the others
    being the same in every row.
    """
    values = [{row[k] for row in batch} for k in keys]
    varying = [i for i, seen in enumerate(values) if len(seen) > 1]
    if len(varying) > 1:
        return None
    probe = varying[0] if varying else len(keys) - 1
    fixed = [(columns[keys[i]], next(iter(seen))) for i, seen in enumerate(values) if i != probe]
    if any(value is None for _column, value in fixed):
        return None
    probed = list(values[probe])
    parameter = any_parameter(probed) if all(type(v) is str for v in probed) else probed
    where = " AND ".join(
        [f"{column} = %s" for column, _value in fixed] + [f"{columns[keys[probe]]} = {any_sql('%s', parameter)}"]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns[keys[probe]]} FROM {table} WHERE {where}", [v for _c, v in fixed] + [parameter]
        )
        taken = {value for (value,) in cursor.fetchall()}
    position = keys[probe]
    new = []
    for row in batch:
        if row[position] not in taken:
            taken.add(row[position])  # a key twice in the batch: its first row
            new.append(row)
    return new


def _staged_insert(table: str, columns: list[str], batch: list[tuple], order: str) -> int:
    """Stream *batch* into a temporary copy of *table* with COPY, then insert what is new in key order.

    Three statements whatever the batch's size; the staging table is dropped when the transaction ends.
    """
    names = ", ".join(columns)
    staging = connection.ops.quote_name(f"bulk_{table.strip(chr(34))}_{next(_staging_names)}")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA")
        _copy(cursor, staging, names, batch)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ORDER BY {order} ON CONFLICT DO NOTHING"
        )
        return cursor.rowcount


def _copy(cursor, table: str, names: str, rows: list[tuple]) -> None:
    """Stream *rows* into *table*'s columns *names* with one COPY on *cursor* (a Django cursor on PostgreSQL)."""
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
