"""The benchmark's W5 history (bench/data.py, bench/workloads.py): deterministic, and the packs it pushes are valid.

No hub here: the packs are read back with the core's own reader and rebuilt
the way the hub rebuilds them; the git side is imported with ``git fast-import``
and compared file by file.
"""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest

from bench import data
from bench.workloads import muse_history, push_bounds, write_history_pack
from musehub_core.ids import blob_id, compute_commit_id
from musehub_core.manifests import rebuild_snapshots
from musehub_core.mpack import index_mpack

FILES, COMMITS, CHANGED, SEED = 120, 12, 5, 99


@pytest.fixture(scope="module")
def history() -> data.History:
    return data.make_history(FILES, COMMITS, CHANGED, SEED)


def test_history_is_seeded_and_has_the_asked_shape(history):
    again = data.make_history(FILES, COMMITS, CHANGED, SEED)
    assert again.initial == history.initial and again.edits == history.edits
    assert history.commits == COMMITS and len(history.paths) == FILES
    assert all(len({i for i, _ in step}) == CHANGED for step in history.edits)
    # the first commit is the W1 tree of the same seed
    assert [c for _, c in data.tree_contents(data.TreeSpec(FILES, seed=SEED))] == history.initial


def test_push_bounds_cover_every_commit_once():
    assert push_bounds(300, 6) == [(0, 50), (50, 100), (100, 150), (150, 200), (200, 250), (250, 300)]
    assert push_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert push_bounds(2, 5) == [(0, 1), (1, 2)]


def test_history_packs_rebuild_to_the_committed_snapshots(history):
    muse = muse_history(history)
    held: dict[str, dict[str, str]] = {}  # what a hub would hold after each push: {snapshot id: manifest}
    base = None
    sent: set[str] = set()
    for start, end in push_bounds(COMMITS, 3):
        ids = list(dict.fromkeys(o for s in muse.sets[start:end] for o in s.values() if o not in sent))
        out = io.BytesIO()
        key, size, base = write_history_pack(out, muse, start, end, base, ids)
        contents = index_mpack(io.BytesIO(out.getvalue()), verify=True)
        assert contents.digest == key and contents.size == size
        assert [c["commit_id"] for c in contents.commits] == [c["commit_id"] for c in muse.commits[start:end]]
        if start:  # a later push: every snapshot travels as a delta, the first against the hub's head
            assert all("base" in s for s in contents.snapshots)
            assert contents.snapshots[0]["base"] == muse.commits[start - 1]["snapshot_id"]
        rebuilt = list(rebuild_snapshots(contents.snapshots, lambda wanted: {w: held[w] for w in wanted}))
        assert [s["snapshot_id"] for s, _ in rebuilt] == [c["snapshot_id"] for c in muse.commits[start:end]]
        held[base[0]] = base[1]
        for commit in contents.commits:
            assert commit["commit_id"] == compute_commit_id(
                commit["parent_ids"], commit["snapshot_id"], commit["message"], commit["committed_at"]
            )
        assert {b.object_id for b in contents.blobs} == set(ids)
        sent.update(ids)
    # the tip's manifest holds every file's last version
    last = list(history.initial)
    for step in history.edits:
        for index, content in step:
            last[index] = content
    assert base[1] == {path: blob_id(content) for path, content in zip(history.paths, last, strict=True)}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_fast_import_stream_gives_git_the_same_history(history, tmp_path):
    stream = tmp_path / "stream"
    with open(stream, "wb") as handle:
        data.write_fast_import(history, handle)
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    repo = tmp_path / "repo.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True, env=env)
    with open(stream, "rb") as handle:
        subprocess.run(["git", f"--git-dir={repo}", "fast-import", "--quiet"], stdin=handle, check=True, env=env)
    count = subprocess.run(
        ["git", f"--git-dir={repo}", "rev-list", "--count", "main"], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    assert int(count) == COMMITS
    last = list(history.initial)
    for step in history.edits:
        for index, content in step:
            last[index] = content
    for index in (0, FILES // 2, FILES - 1):
        shown = subprocess.run(
            ["git", f"--git-dir={repo}", "show", f"main:{history.paths[index]}"],
            capture_output=True,
            check=True,
            env=env,
        ).stdout
        assert shown == last[index]
