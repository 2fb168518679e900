"""musehub_repack: many small packs become one, the index switches atomically, fetches never break."""

from __future__ import annotations

import pytest

from musehub_core.ids import blob_id
from repos.models import MPack, MPackIndex, MPackKind, Object
from repos.services.repack import build_repack, geometric_split, select_packs, switch_repack
from repos.storage.backend import record_storage_ops
from tests.factories import History, make_repo, push_history
from tests.maintkit import fetch_all, packs_read, push_series, random_blob, run, run_failing, run_json

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_content_cache(settings):
    """Serve every blob from packs, so the tests see which packs a fetch reads."""
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = 0


@pytest.mark.parametrize(
    ("sizes", "combined"),
    [
        ([1] * 20, 20),  # equal small packs: all of them
        ([1] * 20 + [1000], 20),  # one big pack among small ones stays
        ([1, 100, 1000], 0),  # already a geometric progression
        ([5, 6, 1000], 2),
        ([1, 10, 11], 3),  # combining the break pulls the next pack in
        ([10, 10, 30], 3),  # 30 < 2 * (10 + 10): absorbed
        ([7], 0),
        ([], 0),
    ],
)
def test_geometric_split_combines_the_packs_that_break_the_progression(sizes, combined):
    assert geometric_split(sizes) == combined


def test_repack_turns_twenty_small_pushes_into_one_pack(backend):
    repo = make_repo()
    history = push_series(repo, 20)
    old_packs = set(MPack.objects.filter(repo=repo).values_list("mpack_id", flat=True))
    encodings = {oid: MPackIndex.objects.get(entity_id=oid).encoding for oid in history.blobs}
    assert len(old_packs) == 20 and "zstd" in encodings.values() and "" in encodings.values()
    _, before = fetch_all(repo)

    report = run_json("musehub_repack", "--repo", repo.full_name)
    (result,) = report["repos"]
    assert {p["mpack_id"] for p in result["sources"]} == old_packs
    assert result["blobs"] == 20
    new_pack = result["mpack_id"]
    assert MPack.objects.get(mpack_id=new_pack).kind == MPackKind.REPACK
    assert set(MPackIndex.objects.filter(entity_id__in=history.blobs).values_list("mpack_id", flat=True)) == {new_pack}
    assert {oid: MPackIndex.objects.get(entity_id=oid).encoding for oid in history.blobs} == encodings
    assert set(Object.objects.filter(object_id__in=history.blobs).values_list("storage_uri", flat=True)) == {
        f"mpack://{new_pack}"
    }
    assert all(backend.mpack_exists(p) for p in old_packs), "old packs wait for gc"

    with record_storage_ops() as ops:
        fetched, after = fetch_all(repo)
    assert packs_read(ops) - {fetched["mpack_id"]} == {new_pack}, "a full fetch reads only the new pack"
    assert after == before == history.blobs
    assert run_json("musehub_fsck")["ok"] is True

    gc = run_json("musehub_gc", "--grace", "0")
    assert {p["mpack_id"] for p in gc["mpacks"]} >= old_packs
    assert not any(backend.mpack_exists(p) for p in old_packs)
    assert fetch_all(repo)[1] == history.blobs
    assert "nothing to repack" in run("musehub_repack", "--repo", repo.full_name)


def test_repack_leaves_a_big_pack_alone(backend):
    repo = make_repo()
    history = History()
    big = random_blob(100_000)
    history.commit({"big.bin": big})
    push_history(repo, history)
    big_pack = MPackIndex.objects.get(entity_id=blob_id(big)).mpack_id
    push_series(repo, 4, history=history)

    (result,) = run_json("musehub_repack", "--repo", repo.full_name)["repos"]
    assert len(result["sources"]) == 4
    assert big_pack not in {p["mpack_id"] for p in result["sources"]}
    assert MPackIndex.objects.get(entity_id=blob_id(big)).mpack_id == big_pack
    assert MPack.objects.filter(repo=repo).count() == 6  # the big pack, four old small ones, the new one
    assert fetch_all(repo)[1] == history.blobs

    (again,) = run_json("musehub_repack", "--repo", repo.full_name, "--all")["repos"]
    assert {p["mpack_id"] for p in again["sources"]} == {big_pack, result["mpack_id"]}


def test_repack_caps_the_packs_combined_per_run(backend):
    repo = make_repo()
    push_series(repo, 6)
    (result,) = run_json("musehub_repack", "--repo", repo.full_name, "--max-packs", "3")["repos"]
    assert len(result["sources"]) == 3 and result["blobs"] == 3


def test_a_fetch_between_building_the_pack_and_switching_the_index_still_works(backend):
    repo = make_repo()
    history = push_series(repo, 5)
    old_packs = set(MPack.objects.filter(repo=repo).values_list("mpack_id", flat=True))
    built = build_repack(repo, select_packs(repo))
    assert built is not None and backend.mpack_exists(built.mpack_id)

    with record_storage_ops() as ops:
        fetched, during = fetch_all(repo)
    assert during == history.blobs
    assert packs_read(ops) - {fetched["mpack_id"]} == old_packs, "before the switch the old index rows serve it"

    run_json("musehub_gc")  # within the grace period the built, not yet indexed pack survives
    assert backend.mpack_exists(built.mpack_id)

    assert switch_repack(built) == 5
    with record_storage_ops() as ops:
        fetched, after = fetch_all(repo)
    assert after == history.blobs
    assert packs_read(ops) - {fetched["mpack_id"]} == {built.mpack_id}

    run_json("musehub_gc", "--grace", "0")
    assert not any(backend.mpack_exists(p) for p in old_packs)
    assert fetch_all(repo)[1] == history.blobs


def test_repack_skips_a_damaged_blob_and_says_so(backend):
    repo = make_repo()
    history = push_series(repo, 3)
    victim = sorted(history.blobs)[0]
    pack, offset, length = MPackIndex.objects.filter(entity_id=victim).values_list("mpack_id", "offset", "length").get()
    data = bytearray(backend.get_mpack(pack))
    data[offset] ^= 0xFF
    backend.put_mpack(pack, bytes(data))
    error, text = run_failing("musehub_repack", "--repo", repo.full_name)
    assert "run musehub_fsck" in str(error)
    assert f"skipped {victim}" in text
    assert MPackIndex.objects.get(entity_id=victim).mpack_id == pack, "the damaged blob stays where it was"


def test_repack_without_repo_visits_every_repository(backend):
    first, second = make_repo(), make_repo()
    push_series(first, 3)
    push_series(second, 1)
    report = run_json("musehub_repack")
    by_repo = {r["repo"]: r for r in report["repos"]}
    assert by_repo[first.full_name]["blobs"] == 3
    assert second.full_name not in by_repo, "one pack: nothing to combine"


def test_repack_names_an_unknown_repository(db):
    error, _ = run_failing("musehub_repack", "--repo", "nobody/nothing")
    assert "There is no repository nobody/nothing" in str(error)
    error, _ = run_failing("musehub_repack", "--repo", "not-a-name")
    assert "OWNER/SLUG" in str(error)
