"""repos.bulk.insert_ignore: many rows at once, skipping those that exist, on both databases and under races."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connection, transaction

from musehub_core.ids import fake_id
from repos import bulk
from repos.bulk import COPY_MIN_ROWS, insert_ignore
from repos.models import Object, ObjectRef
from tests.factories import make_repo

pytestmark = pytest.mark.django_db
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY paths are PostgreSQL's")


OBJECT_FIELDS = ["object_id", "size_bytes", "path", "storage_uri", "created_at"]
NOW = dt.datetime.now(dt.UTC)


def row(object_id: str, size: int) -> tuple:
    return (object_id, size, "", "", NOW)


def ids(tag: str, count: int) -> list[str]:
    return [fake_id(f"{tag}-{i}") for i in range(count)]


@pytest.mark.parametrize("count", [10, COPY_MIN_ROWS + 500])
def test_rows_already_there_or_twice_in_the_batch_are_inserted_once_and_not_counted(count):
    first = ids("first", count)
    with transaction.atomic():
        assert insert_ignore(Object, OBJECT_FIELDS, [row(oid, 1) for oid in first[: count // 2]]) == count // 2
        rows = [row(oid, 2) for oid in first] + [row(first[-1], 3)]  # half there already; the last id twice
        assert insert_ignore(Object, OBJECT_FIELDS, rows) == count - count // 2
        assert insert_ignore(Object, OBJECT_FIELDS, rows) == 0
    sizes = dict(Object.objects.filter(object_id__in=first).values_list("object_id", "size_bytes"))
    assert len(sizes) == count and sizes[first[0]] == 1 and sizes[first[-1]] == 2, "first row wins, nothing rewritten"


def test_a_composite_key_with_one_varying_column_is_checked_in_one_query():
    repo, other = make_repo(), make_repo()
    objects = ids("ref", COPY_MIN_ROWS + 10)
    with transaction.atomic():
        insert_ignore(Object, OBJECT_FIELDS, [row(oid, 1) for oid in objects])
        insert_ignore(ObjectRef, ["repo", "object"], [(other.repo_id, oid) for oid in objects])
        half = [(repo.repo_id, oid) for oid in objects[::2]]
        assert insert_ignore(ObjectRef, ["repo", "object"], half) == len(half)
        assert insert_ignore(ObjectRef, ["repo", "object"], [(repo.repo_id, oid) for oid in objects]) == len(
            objects[1::2]
        ), "the other repository's refs to the same objects do not count as this one's"
    assert ObjectRef.objects.filter(repo=repo).count() == ObjectRef.objects.filter(repo=other).count() == len(objects)


@on_postgres
def test_rows_another_transaction_inserted_after_the_check_fall_back_to_the_staging_table(monkeypatch):
    """The race the straight COPY can lose: the check saw none of the rows, yet some exist when they are copied."""
    existing = ids("race", COPY_MIN_ROWS)
    insert_ignore(Object, OBJECT_FIELDS, [row(oid, 1) for oid in existing[:10]])
    checked: list[int] = []

    def saw_nothing(table, columns, keys, batch):
        checked.append(len(batch))
        return list(batch)

    monkeypatch.setattr(bulk, "_new_rows", saw_nothing)
    with transaction.atomic():
        assert insert_ignore(Object, OBJECT_FIELDS, [row(oid, 2) for oid in existing]) == len(existing) - 10
        assert Object.objects.filter(object_id__in=existing).count() == len(existing), "the transaction goes on"
    assert checked == [len(existing)]


@on_postgres
@pytest.mark.django_db(transaction=True)
def test_two_transactions_inserting_overlapping_batches_at_once_both_succeed():
    """B copies rows A holds uncommitted: B waits, A commits, B's COPY fails and B falls back; nothing is lost."""
    rows = ids("overlap", 3 * COPY_MIN_ROWS)
    a_rows, b_rows = rows[: 2 * COPY_MIN_ROWS], rows[COPY_MIN_ROWS:]
    a_inserted, b_started = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    def a() -> None:
        try:
            with transaction.atomic():
                results["a"] = insert_ignore(Object, OBJECT_FIELDS, [row(oid, 1) for oid in a_rows])
                a_inserted.set()
                b_started.wait(10)
                time.sleep(0.5)  # B is (most likely) blocked in its COPY on A's rows by now
        except Exception as exc:  # the assertion below shows it
            results["a"] = exc
        finally:
            a_inserted.set()
            connection.close()

    def b() -> None:
        try:
            a_inserted.wait(10)
            with transaction.atomic():
                b_started.set()
                results["b"] = insert_ignore(Object, OBJECT_FIELDS, [row(oid, 2) for oid in b_rows])
        except Exception as exc:
            results["b"] = exc
        finally:
            b_started.set()
            connection.close()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": len(a_rows), "b": len(rows) - len(a_rows)}
    assert Object.objects.filter(object_id__in=rows).count() == len(rows)
