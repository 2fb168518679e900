"""``field__any=ids``: one parameter for a long id list, the same rows as ``field__in`` on both databases."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from musehub_core.ids import fake_id
from repos.models import Object

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects():
    ids = [fake_id(f"blob {n}") for n in range(3_000)]
    Object.objects.bulk_create([Object(object_id=oid, size_bytes=n) for n, oid in enumerate(ids)])
    return ids


def test_any_finds_what_in_finds_with_one_parameter(objects):
    wanted = objects[::3] + [fake_id(f"absent {n}") for n in range(500)]
    query = Object.objects.filter(object_id__any=wanted).values_list("object_id", flat=True)
    found = set(query)
    assert found == set(objects[::3])
    assert found == set(Object.objects.filter(object_id__in=wanted).values_list("object_id", flat=True))
    _sql, params = query.query.get_compiler(using="default").as_sql()
    assert len(params) == 1, "the ids travel as one value"


def test_any_of_nothing_is_no_rows_without_a_query(objects):
    with CaptureQueriesContext(connection) as captured:
        assert list(Object.objects.filter(object_id__any=[])) == []
    assert captured.captured_queries == []


def test_any_keeps_values_with_separators_and_quotes_whole(objects):
    odd = ["a\nb", 'q"uote', "back\\slash", "comma,brace}{", "plain"]
    Object.objects.bulk_create([Object(object_id=value) for value in odd])
    assert set(Object.objects.filter(object_id__any=odd).values_list("object_id", flat=True)) == set(odd)
    assert set(Object.objects.filter(object_id__any=["a", "b", "plain"]).values_list("object_id", flat=True)) == {
        "plain"
    }
    Object.objects.create(object_id="")
    assert list(Object.objects.filter(object_id__any=[""]).values_list("object_id", flat=True)) == [""]


def test_any_combines_with_other_filters(objects):
    small = Object.objects.filter(object_id__any=objects[:100], size_bytes__lt=10)
    assert sorted(small.values_list("size_bytes", flat=True)) == list(range(10))
