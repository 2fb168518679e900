"""A push compacts a repository's packs on its own once it holds more than MUSEHUB_AUTO_REPACK_PACKS of them."""

from __future__ import annotations

import pytest

from repos.models import MPack, MPackIndex, MPackKind
from repos.services.repack import repackable_packs
from tests.factories import History, make_repo, push_history
from tests.maintkit import fetch_all

pytestmark = pytest.mark.django_db


def _push_one_file_each(repo, count: int, history: History) -> None:
    for i in range(count):
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
