"""Idempotent bulk inserts: ``INSERT … ON CONFLICT DO NOTHING`` for many rows at once.

Pushes insert tens of thousands of rows that may already exist (content is
shared and clients over-send). Inside a transaction on PostgreSQL a batch of
at least ``COPY_MIN_ROWS`` rows is streamed with ``COPY`` into a temporary
table and moved with one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` (25,000
rows in tens of milliseconds instead of a statement per row); smaller
batches, and SQLite (3.24+ understands ``ON CONFLICT``), take one parametrised
``executemany``.
``bulk_create`` would split either into batches of a few hundred rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

from django.db import connection, models

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
    meta_fields = [model._meta.get_field(name) for name in fields]
    prepare = [_preparer(f) if f.get_internal_type() in _PREPARED else None for f in meta_fields]
    keys = _key_positions(model, fields)
    ordered = sorted(rows, key=_sort_key(keys))
    batch = _prepared(ordered, prepare, len(fields))
    if not batch:
        return 0
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(f.column) for f in meta_fields)
    if connection.vendor == "postgresql" and connection.in_atomic_block and len(batch) >= COPY_MIN_ROWS:
        return _copy_insert(table, columns, batch, ", ".join(quote(meta_fields[i].column) for i in keys))
    marks = ", ".join(["%s"] * len(meta_fields))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)
        return cursor.rowcount


def _sort_key(keys: Sequence[int]) -> Callable[[Sequence[object]], object]:
    """Return the key that sorts rows by their key columns as text (one column: no tuple per row)."""
    if len(keys) == 1:
        (only,) = keys
        return lambda row: str(row[only])
    return lambda row: tuple(str(row[i]) for i in keys)


def _prepared(
    rows: list[Sequence[object]], prepare: list[Callable[[object], object] | None], width: int
) -> list[tuple]:
    """Return *rows* as tuples with the values of the columns that need it prepared for the database."""
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} values for {width} columns")
    positions = [(i, p) for i, p in enumerate(prepare) if p is not None]
    if not positions:
        return [tuple(row) for row in rows]
    batch = []
    for row in rows:
        values = list(row)
        for i, prep in positions:
            values[i] = prep(values[i])
        batch.append(tuple(values))
    return batch


def _copy_insert(table: str, columns: str, batch: list[tuple], order: str) -> int:
    """Stream *batch* into a temporary copy of *table* with COPY, then insert what is new in key order.

    Three statements whatever the batch's size; the staging table is dropped when the transaction ends.
    """
    staging = connection.ops.quote_name(f"bulk_{table.strip(chr(34))}_{next(_staging_names)}")
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMPORARY TABLE {staging} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
        with cursor.cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} ORDER BY {order} ON CONFLICT DO NOTHING"
        )
        return cursor.rowcount
