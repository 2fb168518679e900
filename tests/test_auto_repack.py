"""A push compacts a repository's packs on its own once it holds more than MUSEHUB_AUTO_REPACK_PACKS of them."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from repos.models import MPack, MPackIndex, MPackKind
from repos.services.repack import repack_repo, repackable_packs
from tests.factories import History, make_repo, push_history
from tests.maintkit import fetch_all

pytestmark = pytest.mark.django_db


def _push_one_file_each(repo, count: int, history: History) -> None:
    for i in range(len(history.commits), len(history.commits) + count):
        parents = [history.commits[-1]["commit_id"]] if history.commits else []
        before = set(history.blobs)
        commit = history.commit({f"take-{i:03}.txt": f"take {i} of the chorus\n".encode() * 40}, parents=parents)
        push_history(repo, history, commits=[commit], blobs={o: b for o, b in history.blobs.items() if o not in before})


def test_pushes_past_the_threshold_repack_geometrically_and_every_blob_stays_fetchable(backend, settings):
    settings.MUSEHUB_AUTO_REPACK_PACKS = 4
    repo = make_repo()
    history = History()

    _push_one_file_each(repo, 4, history)
    assert len(repackable_packs(repo)) == 4, "at the threshold nothing is combined"
    assert not MPack.objects.filter(repo=repo, kind=MPackKind.REPACK).exists()

    _push_one_file_each(repo, 13, history)

    live = repackable_packs(repo)
    assert len(live) <= 4, f"17 pushes left {len(live)} live packs"
    assert MPack.objects.filter(repo=repo, kind=MPackKind.REPACK).exists()
    assert MPackIndex.objects.filter(entity_id__in=history.blobs).count() == len(history.blobs), "one index row each"
    _, blobs = fetch_all(repo)
    assert blobs == history.blobs


def test_the_automatic_repack_can_be_turned_off(backend, settings):
    settings.MUSEHUB_AUTO_REPACK_PACKS = 0
    repo = make_repo()
    _push_one_file_each(repo, 10, History())
    assert len(repackable_packs(repo)) == 10
    assert not MPack.objects.filter(repo=repo, kind=MPackKind.REPACK).exists()


def test_the_automatic_repack_rewrites_at_most_its_byte_budget(backend, settings):
    settings.MUSEHUB_AUTO_REPACK_PACKS = 3
    repo = make_repo()
    history = History()
    _push_one_file_each(repo, 3, history)
    sizes = sorted(p.size_bytes for p in repackable_packs(repo))
    settings.MUSEHUB_AUTO_REPACK_MAX_BYTES = sizes[0] + sizes[1] + 1  # room for two packs, not three

    _push_one_file_each(repo, 1, history)

    (repack,) = MPack.objects.filter(repo=repo, kind=MPackKind.REPACK)
    assert repack.blob_count == 2, "the two smallest packs were combined, the rest left for musehub_repack"
    assert len(repackable_packs(repo)) == 3


def test_the_packs_a_repack_retires_start_a_new_grace_period(backend, settings):
    settings.MUSEHUB_AUTO_REPACK_PACKS = 0
    repo = make_repo()
    _push_one_file_each(repo, 3, History())
    old = [p.mpack_id for p in repackable_packs(repo)]
    long_ago = timezone.now() - dt.timedelta(days=30)
    MPack.objects.filter(mpack_id__in=old).update(created_at=long_ago)

    assert repack_repo(repo).mpack_id

    assert all(
        t > long_ago + dt.timedelta(days=29)
        for t in MPack.objects.filter(mpack_id__in=old).values_list("created_at", flat=True)
    ), "a fetch planned before the switch may still read them: gc waits a grace period from now"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the repack lock is a PostgreSQL advisory lock")
def test_a_push_skips_the_automatic_repack_while_another_holds_the_repository_lock(backend, settings):
    import hashlib

    import psycopg

    settings.MUSEHUB_AUTO_REPACK_PACKS = 2
    repo = make_repo()
    history = History()
    _push_one_file_each(repo, 2, history)
    key = int.from_bytes(hashlib.sha256(f"repack:{repo.repo_id}".encode()).digest()[:8], "big", signed=True)
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"]) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        _push_one_file_each(repo, 1, history)
        assert not MPack.objects.filter(repo=repo, kind=MPackKind.REPACK).exists(), "the other holder repacks"
        other.execute("SELECT pg_advisory_unlock(%s)", [key])
    _push_one_file_each(repo, 1, history)
    assert MPack.objects.filter(repo=repo, kind=MPackKind.REPACK).exists()
