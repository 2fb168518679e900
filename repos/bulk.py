"""Idempotent bulk inserts: one ``executemany`` of ``INSERT … ON CONFLICT DO NOTHING``.

Pushes insert tens of thousands of rows that may already exist (content is
shared and clients over-send). ``bulk_create`` splits such inserts into batches
of a few hundred rows on SQLite, so the statement count would grow with the
push; one parametrised ``executemany`` does not, on PostgreSQL (pipelined by
psycopg) or SQLite (3.24+ understands ``ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models

_PREPARED = {"JSONField", "DateTimeField", "BinaryField", "UUIDField"}


def _key_positions(model: type[models.Model], fields: Sequence[str]) -> list[int]:
    """Return the positions in *fields* of the columns that identify a row (its unique constraint, else its key)."""
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint) and all(f in fields for f in constraint.fields):
            return [fields.index(f) for f in constraint.fields]
    names = {model._meta.pk.name, model._meta.pk.attname}
    return [i for i, f in enumerate(fields) if f in names] or [0]


def insert_ignore(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Insert *rows* (values in *fields* order) into *model*'s table, skipping rows that already exist.

    Rows go in key order, so two transactions inserting overlapping rows (pushes
    of shared content into two repositories) take their locks in the same order
    and cannot deadlock each other. Return how many rows were inserted (those
    that already existed do not count).
    """
    meta_fields = [model._meta.get_field(name) for name in fields]
    prepare = [
        (lambda value, f=f: f.get_db_prep_save(value, connection)) if f.get_internal_type() in _PREPARED else None
        for f in meta_fields
    ]
    keys = _key_positions(model, fields)
    ordered = sorted(rows, key=lambda row: tuple(str(row[i]) for i in keys))
    batch = [tuple(p(value) if p else value for p, value in zip(prepare, row, strict=True)) for row in ordered]
    if not batch:
        return 0
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in meta_fields)
    marks = ", ".join(["%s"] * len(meta_fields))
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    with connection.cursor() as cursor:
        cursor.executemany(sql, batch)
        return cursor.rowcount
