"""Snapshot deltas (docs/wire.md §2.1): on the wire in both directions, and in the database.

Pushes carry deltas against the parent's snapshot; the hub rebuilds and
verifies every manifest, refuses bad deltas with a 422 that names the snapshot,
stores snapshots as deltas with bounded chains, and serves deltas only to
clients that ask. Real storage (both backends where storage matters), real
database.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id, compute_snapshot_id
from musehub_core.manifests import Tree, apply_delta, delta_of, make_delta, snapshot_dict
from musehub_core.mpack import parse_wire_mpack
from repos.manifests import changed_paths, load_manifest, load_manifests, stored_form
from repos.models import Commit, Snapshot, SnapshotRef
from repos.services.commits import commit_files_to_repo
from repos.storage.backend import get_backend
from tests.factories import History, build_pack, make_repo, make_user, push_history, stage_mpack, uid
from tests.httpkit import row_counts, token_for
from tests.maintkit import codes, fsck_failure, run, run_json
from tests.mwpkit import LocalRepo, MwpClient
from wire.fetch import wire_fetch_mpack
from wire.push import wire_push_unpack_mpack

pytestmark = pytest.mark.django_db


def tree(count: int = 60, version: int = 0) -> dict[str, bytes]:
    return {f"dir{i % 5}/file{i}.txt": f"file {i} v{version}\n".encode() for i in range(count)}


def linear_history(commits: int, *, files: int = 60, changes: int = 3) -> tuple[History, list[dict[str, bytes]]]:
    """*commits* commits in a line, each rewriting *changes* files of a *files*-file tree (one added now and then)."""
    history, trees = History(), []
    current = tree(files)
    parent = None
    for n in range(commits):
        if n:
            current = dict(current)
            for k in range(changes):
                current[f"dir{k}/file{(n * changes + k) % files}.txt"] = f"commit {n} change {k}\n".encode()
            if n % 4 == 0:
                current[f"added/n{n}.txt"] = f"new in {n}".encode()
            if n % 5 == 0:
                current.pop(f"dir4/file{(n * 7) % files}.txt", None)
        commit = history.commit(current, parents=[parent] if parent else [], message=f"c{n}")
        parent = commit["commit_id"]
        trees.append(current)
    return history, trees


def delta_snapshots(history: History, commits: list[dict], *, held: dict[str, dict] | None = None) -> list[dict]:
    """The snapshots of *commits* as a delta-speaking client sends them: each against its parent's snapshot."""
    manifests = {s["snapshot_id"]: s["manifest"] for s in history.snapshots}
    by_commit = {c["commit_id"]: c["snapshot_id"] for c in history.commits}
    sent: list[dict] = []
    seen = set(held or {})
    for commit in commits:
        sid = commit["snapshot_id"]
        if sid in seen:
            continue
        parent = by_commit.get(commit["parent_ids"][0]) if commit["parent_ids"] else None
        base = (parent, manifests[parent]) if parent in seen else None
        sent.append(snapshot_dict(sid, manifests[sid], base=base))
        seen.add(sid)
    return sent


def push_raw(repo, commits, snapshots, blobs, *, head=None, branch="main"):
    data = build_pack(commits, snapshots, blobs)
    key = stage_mpack(repo, data)
    return wire_push_unpack_mpack(
        repo,
        key,
        "gabriel",
        branch=branch,
        head_commit_id=head or (commits[-1]["commit_id"] if commits else ""),
        commits_count=len(commits),
        blobs_count=len(blobs),
    )


def fetched(result: dict) -> dict:
    return parse_wire_mpack(get_backend().get_mpack(result["mpack_id"]))


def rebuilt(snapshots: list[dict], held: dict[str, dict] | None = None) -> dict[str, dict[str, str]]:
    """Apply a fetch reply's snapshots in order, as a client does; every id must verify."""
    manifests = dict(held or {})
    for snap in snapshots:
        delta = delta_of(snap)
        manifest = snap["manifest"] if delta is None else apply_delta(manifests[snap["base"]], delta)
        assert Tree.of(manifest).snapshot_id() == snap["snapshot_id"]
        manifests[snap["snapshot_id"]] = manifest
    return manifests


# --- the core: trees and deltas ---------------------------------------------------------------------


def test_a_tree_keeps_its_snapshot_id_through_deltas():
    history, trees = linear_history(12)
    manifests = [{p: blob_id(c) for p, c in t.items()} for t in trees]
    current = Tree.of(manifests[0])
    for before, after in zip(manifests, manifests[1:], strict=False):
        current = current.apply(make_delta(before, after))
        assert current.manifest == after
        assert current.snapshot_id() == compute_snapshot_id(after)


def test_a_delta_is_sent_only_when_smaller_than_the_manifest():
    small = {"a": blob_id(b"1")}
    assert "manifest" in snapshot_dict(compute_snapshot_id(small), small, base=("sha256:" + "0" * 64, {}))
    big = {f"f{i}": blob_id(str(i).encode()) for i in range(20)}
    changed = dict(big, f0=blob_id(b"x"))
    sent = snapshot_dict(compute_snapshot_id(changed), changed, base=(compute_snapshot_id(big), big))
    assert sent["base"] == compute_snapshot_id(big) and sent["set"] == {"f0": blob_id(b"x")} and sent["delete"] == []


# --- push: deltas accepted, rebuilt and stored as deltas ----------------------------------------------


def test_a_delta_push_round_trips_and_is_stored_as_deltas(backend):
    repo = make_repo()
    history, trees = linear_history(10)
    first, rest = history.commits[:1], history.commits[1:]
    push_history(repo, history, commits=first, blobs={blob_id(c): c for c in trees[0].values()})
    held = {first[0]["snapshot_id"]: history.snapshots[0]["manifest"]}
    snapshots = delta_snapshots(history, rest, held=held)
    assert all("base" in s for s in snapshots), "every snapshot travels as a delta"
    new_blobs = {oid: c for oid, c in history.blobs.items() if oid not in {blob_id(c) for c in trees[0].values()}}
    result = push_raw(repo, rest, snapshots, new_blobs)
    assert result["commits_added"] == 9

    for commit, files in zip(history.commits, trees, strict=True):
        assert load_manifest(commit["snapshot_id"]) == {p: blob_id(c) for p, c in files.items()}
    forms = [stored_form(c["snapshot_id"]) for c in history.commits]
    assert forms[0].base_id is None and forms[0].depth == 0
    for parent, child in zip(forms, forms[1:], strict=False):
        assert child.base_id == parent.snapshot_id and child.depth == parent.depth + 1
        assert len(child.delta) <= 5, "a stored delta holds what changed, not the tree"


def test_a_delta_padded_with_unchanged_entries_is_stored_and_logged_as_what_changed(backend):
    repo = make_repo()
    history = History()
    files = tree(20)
    first = history.commit(files)
    push_history(repo, history)
    files2 = {**files, "dir0/file0.txt": b"the only change\n"}
    second = history.commit(files2, parents=[first["commit_id"]])
    base = {p: blob_id(c) for p, c in files.items()}
    delta = make_delta(base, {p: blob_id(c) for p, c in files2.items()})
    padded = dict(delta.set) | {"dir1/file1.txt": base["dir1/file1.txt"], "dir2/file2.txt": base["dir2/file2.txt"]}
    snap = {"snapshot_id": second["snapshot_id"], "base": first["snapshot_id"], "set": padded, "delete": []}
    push_raw(repo, [second], [snap], {blob_id(b"the only change\n"): b"the only change\n"})

    assert stored_form(second["snapshot_id"]).delta.set == {"dir0/file0.txt": blob_id(b"the only change\n")}
    assert changed_paths([(second["snapshot_id"], first["snapshot_id"])]) == {
        (second["snapshot_id"], first["snapshot_id"]): {"dir0/file0.txt"}
    }


def test_a_fetch_with_the_capability_carries_deltas_and_without_it_full_manifests(backend):
    repo = make_repo()
    history, trees = linear_history(8)
    push_history(repo, history)
    head = history.commits[-1]["commit_id"]
    originals = {s["snapshot_id"]: s["manifest"] for s in history.snapshots}

    plain = fetched(wire_fetch_mpack(repo, want=[head], have=[]))
    assert all("manifest" in s for s in plain["snapshots"]), "older clients get full manifests"
    assert {s["snapshot_id"]: s["manifest"] for s in plain["snapshots"]} == originals

    result = wire_fetch_mpack(repo, want=[head], have=[], capabilities=["snapshot-delta"])
    pack = fetched(result)
    assert "manifest" in pack["snapshots"][0] and all("base" in s for s in pack["snapshots"][1:])
    assert rebuilt(pack["snapshots"]) == originals
    assert {b["object_id"] for b in pack["blobs"]} == {b["object_id"] for b in plain["blobs"]}, "same blobs either way"

    middle = history.commits[3]
    incremental = fetched(
        wire_fetch_mpack(repo, want=[head], have=[middle["commit_id"]], capabilities=["snapshot-delta"])
    )
    assert all("base" in s for s in incremental["snapshots"]), "based on the snapshot of a have commit"
    assert incremental["snapshots"][0]["base"] == middle["snapshot_id"]
    held = {middle["snapshot_id"]: originals[middle["snapshot_id"]]}
    assert rebuilt(incremental["snapshots"], held) == {**held, **{s: originals[s] for s in list(originals)[4:]}}
    held_blobs = {blob_id(c) for t in trees[:4] for c in t.values()}
    assert {b["object_id"] for b in incremental["blobs"]}.isdisjoint(held_blobs), "only blobs the client lacks"


def test_refs_lists_the_snapshot_delta_capability(client):
    repo = make_repo()
    reply = client.get(f"/{repo.owner}/{repo.slug}/refs", HTTP_ACCEPT="application/json")
    assert reply.status_code == 200 and "snapshot-delta" in reply.json()["capabilities"]


def pushed_chain(settings, commits: int, *, chain_max: int = 3) -> tuple[History, list[dict[str, bytes]], list[str]]:
    """Push a linear history of *commits* into a new repository, a checkpoint every *chain_max* deltas.

    Return the history, each commit's tree and each commit's snapshot id.
    """
    settings.MUSEHUB_SNAPSHOT_CHAIN_MAX = chain_max
    history, trees = linear_history(commits)
    push_history(make_repo(), history)
    return history, trees, [c["snapshot_id"] for c in history.commits]


def test_a_checkpoint_is_stored_when_the_chain_reaches_its_limit(settings):
    history, trees, _ = pushed_chain(settings, 9)
    depths = [stored_form(c["snapshot_id"]).depth for c in history.commits]
    assert depths == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert load_manifests(c["snapshot_id"] for c in history.commits) == {
        c["snapshot_id"]: {p: blob_id(x) for p, x in t.items()} for c, t in zip(history.commits, trees, strict=True)
    }


def _truth(trees, i):
    new = {p: blob_id(x) for p, x in trees[i].items()}
    old = {p: blob_id(x) for p, x in trees[i - 1].items()}
    return {p for p in new if old.get(p) != new[p]} | {p for p in old if p not in new}


def test_a_checkpoint_notes_its_changes_so_a_path_log_reads_no_manifest(settings):
    _, trees, sids = pushed_chain(settings, 9)
    pairs = [(sids[i], sids[i - 1]) for i in range(1, 9)]
    assert [stored_form(s).depth for s in sids][4] == 0, "commit 4 is a checkpoint"

    with CaptureQueriesContext(connection) as queries:
        changes = changed_paths(pairs)

    assert changes == {pair: _truth(trees, i) for i, pair in enumerate(pairs, start=1)}
    assert len(queries) == 2, "one query for the light columns, one for the deltas' rows: no manifest rebuilt"


def test_a_checkpoint_written_without_the_note_gets_it_on_first_use(settings):
    _, trees, sids = pushed_chain(settings, 6)
    Snapshot.objects.filter(snapshot_id=sids[4]).update(parent_changes=None)  # as rows written before the note

    assert changed_paths([(sids[4], sids[3])]) == {(sids[4], sids[3]): _truth(trees, 4)}
    assert Snapshot.objects.get(snapshot_id=sids[4]).parent_changes is not None, "noted for the next time"
    with CaptureQueriesContext(connection) as queries:
        assert changed_paths([(sids[4], sids[3])]) == {(sids[4], sids[3]): _truth(trees, 4)}
    assert len(queries) == 1
    # A pair against another snapshot than the noted parent is compared, not answered from the note.
    assert changed_paths([(sids[4], sids[1])]) == {
        (sids[4], sids[1]): {p for p in set(trees[4]) | set(trees[1]) if trees[4].get(p) != trees[1].get(p)}
    }


def test_rebuilding_a_manifest_is_one_query_whatever_the_chain_length(settings):
    settings.MUSEHUB_SNAPSHOT_CHAIN_MAX = 40
    repo = make_repo()
    history, trees = linear_history(30)
    push_history(repo, history)
    tip = history.commits[-1]["snapshot_id"]
    assert stored_form(tip).depth == 29
    with CaptureQueriesContext(connection) as queries:
        manifest = load_manifest(tip)
    assert len(queries) == 1
    assert manifest == {p: blob_id(c) for p, c in trees[-1].items()}


def test_a_checkpoint_this_process_decoded_is_not_sent_by_the_database_again(monkeypatch):
    from repos import manifests

    monkeypatch.setattr(manifests, "_CHECKPOINTS", manifests._Recent(4))
    repo = make_repo()
    history, trees = linear_history(3, files=1_200)  # a checkpoint big enough to keep decoded
    push_history(repo, history)
    first, tip = history.commits[0]["snapshot_id"], history.commits[-1]["snapshot_id"]
    expected = {p: blob_id(c) for p, c in trees[-1].items()}
    assert stored_form(first).base_id is None and stored_form(tip).base_id is not None

    assert load_manifest(tip) == expected  # decodes the checkpoint, and keeps it
    assert manifests._CHECKPOINTS.keys() == [first]
    rows = manifests._chain_rows([tip], cached=[first])
    assert rows[first][3] is None, "the decoded checkpoint's blob is not sent again"
    assert rows[tip][3] is not None, "deltas are"
    assert load_manifest(tip) == expected

    # Dropped from the cache between the query and the rebuild: read from its row after all.
    monkeypatch.setattr(manifests, "_CHECKPOINTS", manifests._Recent(4))
    assert manifests._Rebuilder(rows).manifest(tip) == expected


def test_a_cached_checkpoint_rewritten_as_a_delta_is_read_as_the_delta_it_now_is(monkeypatch):
    """musehub_snapshot_deltas may rewrite a checkpoint while a process holds it decoded: its blob is sent again."""
    from repos import manifests

    monkeypatch.setattr(manifests, "_CHECKPOINTS", manifests._Recent(4))
    repo = make_repo()
    history, trees = linear_history(3, files=1_200)
    push_history(repo, history)
    s0, s1, s2 = (c["snapshot_id"] for c in history.commits)
    m0, m1, m2 = ({p: blob_id(c) for p, c in t.items()} for t in trees)
    Snapshot.objects.filter(snapshot_id=s1).update(base_id=None, depth=0, manifest_blob=manifests.encode_full(m1))
    assert load_manifest(s2) == m2 and manifests._CHECKPOINTS.get(s1) is not None  # a checkpoint, decoded
    Snapshot.objects.filter(snapshot_id=s1).update(
        base_id=s0, depth=1, manifest_blob=manifests.encode_delta(make_delta(m0, m1))
    )
    assert load_manifest(s1) == m1 and load_manifest(s2) == m2


def test_full_snapshots_sent_newest_first_are_still_stored_as_deltas():
    repo = make_repo()
    history, _ = linear_history(6)
    data_commits = list(reversed(history.commits))
    push_raw(
        repo, data_commits, list(reversed(history.snapshots)), history.blobs, head=history.commits[-1]["commit_id"]
    )
    assert [stored_form(c["snapshot_id"]).depth for c in history.commits] == [0, 1, 2, 3, 4, 5]


def test_server_side_commits_are_stored_as_deltas_too():
    repo = make_repo()
    files = {f"f{i}.txt": f"{i}".encode() for i in range(30)}
    first = commit_files_to_repo(repo.repo_id, branch="main", files=files, message="one", author="a")
    second = commit_files_to_repo(repo.repo_id, branch="main", files={"f3.txt": b"new"}, message="two", author="a")
    form = stored_form(Commit.objects.get(commit_id=second).snapshot_id)
    assert form.base_id == Commit.objects.get(commit_id=first).snapshot_id
    assert form.delta.set == {"f3.txt": blob_id(b"new")} and form.delta.delete == []


# --- invalid deltas: 422 naming the snapshot, nothing written ------------------------------------------


def _one_delta_push(repo, history, *, snapshot: dict, blobs: dict | None = None):
    commit = history.commits[-1]
    return push_raw(repo, [commit], [snapshot], blobs if blobs is not None else {})


def _base_and_child(count: int):
    """A repository holding one commit of a *count*-file tree; a child commit changing one file, not pushed;
    and the child's snapshot as a delta against the base's."""
    repo = make_repo()
    history = History()
    files = tree(count)
    base = history.commit(files)
    push_history(repo, history)
    child = history.commit(dict(files, **{"dir0/file0.txt": b"changed"}), parents=[base["commit_id"]])
    manifest = {p: blob_id(c) for p, c in files.items()}
    snap = snapshot_dict(
        child["snapshot_id"],
        dict(manifest, **{"dir0/file0.txt": blob_id(b"changed")}),
        base=(base["snapshot_id"], manifest),
    )
    return repo, history, base, child, snap


@pytest.fixture
def based():
    """A repository holding one commit of a 40-file tree, and a child commit not yet pushed."""
    return _base_and_child(40)[:4]


def assert_refused(repo, push, *fragments):
    before = row_counts()
    with pytest.raises(MalformedPack) as caught:
        push()
    assert caught.value.status == 422
    for fragment in fragments:
        assert fragment in caught.value.message, f"{fragment!r} not in {caught.value.message!r}"
    assert row_counts() == before, "a refused push writes no rows"


def test_a_delta_against_an_unknown_base_is_refused(based):
    repo, history, base, child = based
    unknown = "sha256:" + "ab" * 32
    snap = {"snapshot_id": child["snapshot_id"], "base": unknown, "set": {}, "delete": [], "created_at": ""}
    assert_refused(repo, lambda: _one_delta_push(repo, history, snapshot=snap), child["snapshot_id"], unknown)


def test_a_delta_against_a_snapshot_only_another_private_repository_holds_is_refused(based):
    repo, history, base, child = based
    secret = make_repo(visibility="private")
    other = History()
    hidden_files = tree(40, version=9)
    hidden = other.commit(hidden_files)
    push_history(secret, other)
    assert not SnapshotRef.objects.filter(repo=repo, snapshot_id=hidden["snapshot_id"]).exists()
    manifest = {p: blob_id(c) for p, c in hidden_files.items()}
    changed = dict(manifest, **{"dir0/file0.txt": blob_id(b"x")})
    mine = history.commit({**hidden_files, "dir0/file0.txt": b"x"}, parents=[base["commit_id"]])
    snap = snapshot_dict(mine["snapshot_id"], changed, base=(hidden["snapshot_id"], manifest))
    assert snap["base"] == hidden["snapshot_id"]
    assert_refused(repo, lambda: _one_delta_push(repo, history, snapshot=snap), mine["snapshot_id"], "base")


def test_deleting_a_path_the_base_lacks_is_refused(based):
    repo, history, base, child = based
    snap = {
        "snapshot_id": child["snapshot_id"],
        "base": base["snapshot_id"],
        "set": {"dir0/file0.txt": blob_id(b"changed")},
        "delete": ["no/such/path"],
    }
    assert_refused(repo, lambda: _one_delta_push(repo, history, snapshot=snap), child["snapshot_id"], "no/such/path")


def test_a_path_both_set_and_deleted_is_refused(based):
    repo, history, base, child = based
    snap = {
        "snapshot_id": child["snapshot_id"],
        "base": base["snapshot_id"],
        "set": {"dir0/file0.txt": blob_id(b"changed")},
        "delete": ["dir0/file0.txt"],
    }
    assert_refused(
        repo,
        lambda: _one_delta_push(repo, history, snapshot=snap),
        child["snapshot_id"],
        "both in 'set' and in 'delete'",
    )


@pytest.mark.parametrize(
    ("path", "problem"), [("/abs", "is absolute"), ("a/../b", "'..' segment"), ("a\\b", "backslash")]
)
def test_bad_paths_in_a_delta_are_refused(based, path, problem):
    repo, history, base, child = based
    snap = {"snapshot_id": child["snapshot_id"], "base": base["snapshot_id"], "set": {path: blob_id(b"x")}}
    assert_refused(repo, lambda: _one_delta_push(repo, history, snapshot=snap), child["snapshot_id"], problem)


def test_a_delta_that_does_not_rebuild_to_its_id_is_refused(based):
    repo, history, base, child = based
    snap = {"snapshot_id": child["snapshot_id"], "base": base["snapshot_id"], "set": {"dir0/file0.txt": blob_id(b"y")}}
    assert_refused(
        repo,
        lambda: _one_delta_push(repo, history, snapshot=snap, blobs={blob_id(b"y"): b"y"}),
        child["snapshot_id"],
        "does not match its manifest",
    )


@pytest.fixture
def big_base():
    """As ``based``, with a tree big enough for the hub to keep (small ones cost little to rebuild)."""
    return _base_and_child(1_200)


def test_a_push_on_top_of_a_head_this_process_verified_reads_no_manifest_and_still_checks_everything(big_base):
    """The hub keeps the trees pushes verified last: the next delta on one is checked without a rebuild."""
    repo, history, base, child, good = big_base

    # A delta that does not rebuild to its id, and the same delta pushed to a repository without its base:
    # both still refused.
    wrong = dict(good, set={"dir0/file0.txt": blob_id(b"other")})
    assert_refused(
        repo,
        lambda: _one_delta_push(repo, history, snapshot=wrong, blobs={blob_id(b"other"): b"other"}),
        "does not match its manifest",
    )
    elsewhere = make_repo()
    assert_refused(elsewhere, lambda: _one_delta_push(elsewhere, history, snapshot=good, blobs={}), "base")

    with CaptureQueriesContext(connection) as queries:
        result = _one_delta_push(repo, history, snapshot=good, blobs={blob_id(b"changed"): b"changed"})
    assert result["commits_added"] == 1
    assert not [q for q in queries.captured_queries if "RECURSIVE chain" in q["sql"]], "no manifest was loaded"
    assert load_manifest(child["snapshot_id"])["dir0/file0.txt"] == blob_id(b"changed")


def test_a_push_on_top_of_a_head_this_process_served_in_a_clone_reads_no_manifest_either(big_base, monkeypatch):
    from repos import manifests

    repo, history, base, _child, snap = big_base
    monkeypatch.setattr(manifests, "_TREES", manifests._Recent(2))  # as if another process took the push
    wire_fetch_mpack(repo, want=[base["commit_id"]], have=[])  # a clone
    assert manifests.recent_tree(base["snapshot_id"]) is not None

    with CaptureQueriesContext(connection) as queries:
        result = _one_delta_push(repo, history, snapshot=snap, blobs={blob_id(b"changed"): b"changed"})
    assert result["commits_added"] == 1
    assert not [q for q in queries.captured_queries if "RECURSIVE chain" in q["sql"]]


def test_a_base_later_in_the_pack_is_refused():
    repo = make_repo()
    history, _ = linear_history(3)
    snapshots = delta_snapshots(history, history.commits)
    assert "base" in snapshots[1]
    reordered = [snapshots[1], snapshots[0], snapshots[2]]
    assert_refused(repo, lambda: push_raw(repo, history.commits, reordered, history.blobs), "comes later in the pack")


def test_a_snapshot_with_both_a_manifest_and_a_base_is_refused(based):
    repo, history, base, child = based
    snap = {"snapshot_id": child["snapshot_id"], "base": base["snapshot_id"], "manifest": {}}
    assert_refused(repo, lambda: _one_delta_push(repo, history, snapshot=snap), "both 'manifest' and 'base'")


# --- MWP: full manifests, built on demand ------------------------------------------------------------


def test_mwp_clone_and_fetch_of_delta_stored_history_give_the_original_manifests(live_server):
    alice = make_user(f"alice-{uid()}")
    hub = MwpClient(f"{live_server.url}/{alice.username}/deltas-{uid()}", token_for(alice))
    local = LocalRepo()
    files = {f"d{i % 3}/f{i}.txt": f"{i}".encode() for i in range(40)}
    for n in range(6):
        files = dict(files, **{f"d0/f{n}.txt": f"v{n}".encode()})
        local.commit(files, message=f"c{n}")
    hub.push(local)
    stored = [stored_form(from_hex) for from_hex in ("sha256:" + c["snapshot_id"] for c in local.commits.values())]
    assert sum(form.base_id is not None for form in stored) == 5, "the hub stored the CLI's full snapshots as deltas"

    clone = hub.clone()
    assert {sid: s["manifest"] for sid, s in clone.snapshots.items()} == {
        sid: s["manifest"] for sid, s in local.snapshots.items()
    }
    local.commit(dict(files, extra=b"more"), message="more")
    hub.push(local)
    reply = hub.fetch(clone)
    assert [s["manifest"] for s in reply["snapshots"]] == [local.manifest_at(local.heads["main"])]


# --- conversion, fsck, gc ---------------------------------------------------------------------------


def test_existing_full_snapshots_are_converted_by_the_maintenance_command(settings):
    settings.MUSEHUB_SNAPSHOT_CHAIN_MAX = 0  # as a hub before deltas: every manifest whole
    repo = make_repo()
    history, trees = linear_history(7)
    push_history(repo, history)
    ids = [c["snapshot_id"] for c in history.commits]
    assert all(stored_form(s).base_id is None for s in ids)
    before = load_manifests(ids)

    settings.MUSEHUB_SNAPSHOT_CHAIN_MAX = 64
    dry = run_json("musehub_snapshot_deltas", "--dry-run")
    assert dry["rewritten"] == 6 and all(stored_form(s).base_id is None for s in ids), "a dry run writes nothing"
    report = run_json("musehub_snapshot_deltas")
    assert report["deltas"] == 6 and report["bytes_after"] < report["bytes_before"]
    assert [stored_form(s).depth for s in ids] == list(range(7))
    assert load_manifests(ids) == before
    assert run_json("musehub_snapshot_deltas")["rewritten"] == 0, "a second run changes nothing"
    assert run_json("musehub_fsck")["ok"] is True


def test_fsck_finds_a_corrupted_delta():
    repo = make_repo()
    history, _ = linear_history(4)
    push_history(repo, history)
    victim = history.commits[2]["snapshot_id"]
    form = stored_form(victim)
    bad = make_delta({}, {})
    wrong = dict(form.delta.set)
    wrong[next(iter(wrong))] = blob_id(b"not what was pushed")
    from repos.manifests import encode_delta

    Snapshot.objects.filter(snapshot_id=victim).update(
        manifest_blob=encode_delta(type(bad)(set=wrong, delete=form.delta.delete))
    )
    _, _, report = fsck_failure()
    assert victim in codes(report)["snapshot-corrupt"]


def test_gc_keeps_the_bases_of_remaining_snapshots():
    repo = make_repo()
    history, _ = linear_history(5)
    push_history(repo, history)
    ids = [c["snapshot_id"] for c in history.commits]
    # Another repository shares only the newest commit's snapshot; the first repository goes.
    keeper = make_repo()
    SnapshotRef.objects.create(repo=keeper, snapshot_id=ids[-1])
    repo.delete()
    run("musehub_gc", "--grace", "0")
    assert set(Snapshot.objects.filter(snapshot_id__in=ids).values_list("snapshot_id", flat=True)) == set(ids)
    assert load_manifest(ids[-1]) == history.snapshots[-1]["manifest"]


def test_a_log_filtered_by_path_reads_stored_deltas_not_whole_manifests():
    from repos.readmodel import CommitLog, clear_caches

    repo = make_repo()
    history, trees = linear_history(30)
    push_history(repo, history)
    head = history.commits[-1]["commit_id"]
    expected = [
        c["commit_id"]
        for c, before, after in zip(history.commits, [{}, *trees], trees, strict=False)
        if {p: x for p, x in before.items() if p.startswith("added/")}
        != {p: x for p, x in after.items() if p.startswith("added/")}
    ]
    clear_caches()  # nothing compared yet
    log = CommitLog(head, path="added")
    with CaptureQueriesContext(connection) as queries:
        log.scan()
    touching = log.matched
    assert touching == list(reversed(expected)) and 0 < len(touching) < 30
    assert len(queries) <= 4, "one walk, one batch of stored rows, one rebuild for the root commit"


def test_the_objects_a_fetchs_edge_names_are_found_in_a_kept_tree_or_rebuilt_alike(big_base, monkeypatch):
    """A fetch leaves out the blobs the client's commits name: asked of a tree this process keeps, or rebuilt."""
    from repos import manifests

    repo, history, base, _child, _snap = big_base
    sid = base["snapshot_id"]
    held = load_manifest(sid)
    some = sorted(set(held.values()))[:3]
    candidates = [*some, blob_id(b"named by no snapshot")]
    assert manifests.recent_tree(sid) is not None, "the push kept the tree it verified"
    assert manifests.named_among([sid], candidates) == set(some)
    monkeypatch.setattr(manifests, "_TREES", manifests._Recent(2))  # another process: rebuilt from the database
    assert manifests.named_among([sid, sid], candidates) == set(some)
    assert manifests.named_among([sid], []) == set()
    assert manifests.named_among([], candidates) == set()
