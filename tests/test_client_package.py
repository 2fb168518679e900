"""The installable client (``musehub_client``) on its own: no Django, snapshot deltas, packaging.

The hub side of snapshot deltas is tested with the hub; here a small in-process
fake hub (stdlib HTTP server speaking the mpack protocol of docs/wire.md §3) checks
what the client sends and how it reads what it gets, with and without the
``snapshot-delta`` capability.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zstandard
from packaging.requirements import Requirement

from musehub_client import cli, operations
from musehub_client.feedback import Silent
from musehub_client.http import EXIT_CONFLICT, EXIT_SERVER, SNAPSHOT_DELTA, ClientError
from musehub_client.packs import (
    PackStore,
    UnknownBase,
    build_push_pack,
    make_commit,
    manifests_path,
    verify_pack,
    write_manifests,
)
from musehub_client.state import PACKS_DIR, STATE_DIR
from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id, fake_id, hex_of
from musehub_core.manifests import rebuild_snapshots, snapshot_dict
from musehub_core.mpack import build_wire_mpack, parse_wire_mpack
from tests.clientkit import run, spy_reads, tree_of

REPO = Path(__file__).resolve().parent.parent
REPO_PATH = "/alice/demo"
TOKEN = "mh_test"  # the fake hub accepts any token; pushing needs one


# --- a fake hub ------------------------------------------------------------------------------------


class FakeHub:
    """Just enough of the mpack protocol for the client: refs, filter-objects, upload, push, fetch, downloads.

    ``capabilities`` is what ``/refs`` lists (None: no ``capabilities`` key, like a
    hub from before deltas). With ``foreign_base`` set to (snapshot id, manifest),
    fetch replies make every delta against that snapshot, one the client never saw.
    """

    def __init__(self, capabilities: list[str] | None = None) -> None:
        self.capabilities = capabilities
        self.foreign_base: tuple[str, dict[str, str]] | None = None
        self.blobs: dict[str, bytes] = {}
        self.commits: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, str]] = {}
        self.heads: dict[str, str] = {}
        self.uploads: dict[str, bytes] = {}
        self.packs: dict[str, bytes] = {}
        self.pushed: list[dict[str, Any]] = []  # every pushed pack, parsed (snapshots as they travelled)
        self.fetches: list[dict[str, Any]] = []  # every mpack/fetch request body
        self.served: list[dict[str, Any]] = []  # every fetch pack, parsed
        self.cut_downloads = 0  # this many of the next pack downloads stop half way (the connection closes)
        self.downloads = 0
        self.lock = threading.Lock()

    # -- the protocol

    def refs(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "repo_id": fake_id("repo"),
            "domain": "",
            "default_branch": "main",
            "branch_heads": dict(self.heads),
        }
        if self.capabilities is not None:
            answer["capabilities"] = list(self.capabilities)
        return answer

    def push(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        data = self.uploads.get(body["mpack_key"])
        if data is None:
            return 404, {"detail": "unknown pack"}
        try:
            pack = parse_wire_mpack(data)
            rebuilt = {
                snap["snapshot_id"]: tree.manifest
                for snap, tree in rebuild_snapshots(pack["snapshots"], lambda ids: self._held(ids))
            }
        except MalformedPack as exc:
            return 422, {"detail": exc.message}
        branch, head = body["branch"], body["head_commit_id"]
        current = self.heads.get(branch)
        commit = next(c for c in pack["commits"] if c["commit_id"] == head)
        if current and current not in commit["parent_ids"] and not body["force"]:
            return 409, {"detail": "non-fast-forward: fetch first, or push with force"}
        self.pushed.append(pack)
        self.snapshots.update(rebuilt)
        for c in pack["commits"]:
            self.commits[c["commit_id"]] = c
        for blob in pack["blobs"]:
            raw = blob["content"]
            if blob.get("encoding") == "zstd":
                raw = zstandard.ZstdDecompressor().decompress(raw)
            assert blob_id(raw) == blob["object_id"]
            self.blobs[blob["object_id"]] = raw
        self.heads[branch] = head
        return 200, {"ok": True, "branch": branch, "head_commit_id": head, "branch_heads": dict(self.heads)}

    def _held(self, ids: list[str]) -> dict[str, dict[str, str]]:
        return {sid: self.snapshots[sid] for sid in ids if sid in self.snapshots}

    def _ancestors(self, starts: list[str]) -> list[str]:
        """Return the commits reachable from *starts*, parents before children."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(cid: str) -> None:
            if cid in seen or cid not in self.commits:
                return
            seen.add(cid)
            for parent in self.commits[cid]["parent_ids"]:
                visit(parent)
            order.append(cid)

        for cid in starts:
            visit(cid)
        return order

    def fetch(self, body: dict[str, Any]) -> dict[str, Any]:
        self.fetches.append(body)
        deltas = SNAPSHOT_DELTA in (body.get("capabilities") or [])
        had = set(self._ancestors(list(body["have"])))
        listed_snapshots = {self.commits[c]["snapshot_id"] for c in body["have"] if c in self.commits}
        held_blobs = {oid for c in had for oid in self.snapshots[self.commits[c]["snapshot_id"]].values()}
        commits = [self.commits[c] for c in self._ancestors(list(body["want"])) if c not in had]
        snapshots: list[dict[str, Any]] = []
        sent: set[str] = set()
        blobs: dict[str, bytes] = {}
        for commit in commits:
            sid = commit["snapshot_id"]
            if sid in sent:
                continue
            manifest = self.snapshots[sid]
            base = None
            parents = commit["parent_ids"]
            if deltas and self.foreign_base is not None:
                base = self.foreign_base
            elif deltas and parents:
                base_sid = self.commits[parents[0]]["snapshot_id"]
                if base_sid in sent or base_sid in listed_snapshots:
                    base = (base_sid, self.snapshots[base_sid])
            snapshots.append(snapshot_dict(sid, manifest, base=base, created_at=commit["committed_at"]))
            sent.add(sid)
            blobs.update({oid: self.blobs[oid] for oid in manifest.values() if oid not in held_blobs})
        data = build_wire_mpack(
            {
                "commits": commits,
                "snapshots": snapshots,
                "blobs": [{"object_id": oid, "content": raw} for oid, raw in blobs.items()],
                "branch_heads": dict(self.heads),
            }
        )
        key = blob_id(data)
        self.packs[hex_of(key)] = data
        self.served.append(parse_wire_mpack(data))
        return {
            "mpack_id": key,
            "mpack_url": f"/packs/{hex_of(key)}",
            "commit_count": len(commits),
            "snapshot_count": len(snapshots),
            "blob_count": len(blobs),
            "size": len(data),
        }

    # -- HTTP

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, raw: bytes | None = None, cut_at: int = -1) -> None:
                data = raw if raw is not None else msgpack.packb(body, use_bin_type=True)
                self.send_response(status)
                self.send_header(
                    "Content-Type", "application/octet-stream" if raw is not None else "application/x-msgpack"
                )
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if cut_at >= 0:
                    self.wfile.write(data[:cut_at])
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                with hub.lock:
                    if self.path == f"{REPO_PATH}/refs":
                        return self._send(200, hub.refs())
                    if self.path.startswith("/packs/") and self.path[7:] in hub.packs:
                        hub.downloads += 1
                        data = hub.packs[self.path[7:]]
                        if hub.cut_downloads:
                            hub.cut_downloads -= 1
                            return self._send(200, raw=data, cut_at=len(data) // 2)
                        return self._send(200, raw=data)
                    return self._send(404, {"detail": "not found"})

            def do_PUT(self) -> None:
                data = self._body()
                with hub.lock:
                    hub.uploads["sha256:" + self.path.rsplit("/", 1)[1]] = data
                    return self._send(200, raw=b"")

            def do_POST(self) -> None:
                body = msgpack.unpackb(self._body(), raw=False)
                with hub.lock:
                    suffix = self.path.removeprefix(REPO_PATH + "/")
                    if suffix == "filter-objects":
                        return self._send(200, {"missing": [o for o in body["object_ids"] if o not in hub.blobs]})
                    if suffix == "mpack/upload":
                        key = body["mpack_key"]
                        return self._send(
                            200, {"mpack_key": key, "upload_url": f"/upload/{hex_of(key)}", "method": "PUT"}
                        )
                    if suffix == "mpack/push":
                        return self._send(*hub.push(body))
                    if suffix == "mpack/fetch":
                        return self._send(200, hub.fetch(body))
                    return self._send(404, {"detail": "not found"})

        return Handler


@pytest.fixture
def hub_factory() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(capabilities: list[str] | None = None) -> tuple[FakeHub, str]:
        hub = FakeHub(capabilities)
        server = ThreadingHTTPServer(("127.0.0.1", 0), hub.handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return hub, f"http://127.0.0.1:{server.server_address[1]}{REPO_PATH}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- helpers -----------------------------------------------------------------------------------------


def make_tree(root: Path, count: int = 40) -> None:
    for i in range(count):
        path = root / f"dir{i % 4}" / f"file-{i}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {i}\n" * (i + 1))


def manifest_of(files: dict[str, bytes]) -> dict[str, str]:
    return {path: blob_id(content) for path, content in files.items()}


class Notes:
    """A Feedback that keeps the notes."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)

    def progress(self, label: str, total: int | None) -> Any:
        return Silent().progress(label, total)


# --- no Django ---------------------------------------------------------------------------------------


def test_client_and_core_import_no_django_nor_hub_app():
    code = (
        "import musehub_client.cli, musehub_client.operations, musehub_core.mpack, musehub_core.manifests, sys\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'rest_framework', 'repos', 'wire', 'musehub', 'api', 'hubhttp'))\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("module", "prog"), [("musehub_client", "python -m musehub_client")])
def test_the_command_line_runs_as_a_module(module, prog):
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {prog} ") and "exit codes:" in done.stdout
    done = subprocess.run([sys.executable, "-m", module, "clone"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


def test_pyproject_packages_only_the_client_and_the_core():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["name"] == "musehub-client"
    assert project["project"]["scripts"] == {"musehub": "musehub_client.cli:main"}
    assert project["tool"]["setuptools"]["packages"] == ["musehub_client", "musehub_core"]
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version.strip()
    wanted = [Requirement(r) for r in project["project"]["dependencies"]]
    assert sorted(r.name for r in wanted) == ["msgpack", "requests", "zstandard"]
    for requirement in wanted:
        assert requirement.specifier.contains(pins[requirement.name]), (requirement, pins[requirement.name])


# --- snapshot deltas without a hub -----------------------------------------------------------------------


def test_a_push_pack_carries_a_delta_against_the_parent_manifest(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, count=10)
    files = tree_of(root)
    parent_manifest = manifest_of(files)
    parent_snapshot = compute_snapshot_id(parent_manifest)
    (root / "dir0" / "file-0.txt").write_text("changed")
    (root / "dir1" / "file-1.txt").unlink()
    (root / "new.txt").write_text("new")
    manifest = manifest_of(tree_of(root))

    commit, snapshot = make_commit(
        manifest, fake_id("parent"), branch="main", message="m", author="a", base=(parent_snapshot, parent_manifest)
    )
    assert snapshot["base"] == parent_snapshot and "manifest" not in snapshot
    assert snapshot["set"] == {"dir0/file-0.txt": manifest["dir0/file-0.txt"], "new.txt": manifest["new.txt"]}
    assert snapshot["delete"] == ["dir1/file-1.txt"]

    buffer = io.BytesIO()
    changed = {manifest["dir0/file-0.txt"]: "dir0/file-0.txt", manifest["new.txt"]: "new.txt"}
    build_push_pack(buffer, root, commit=commit, snapshot=snapshot, blob_paths=changed, branch="main")
    pack = parse_wire_mpack(buffer.getvalue())
    [(travelled, tree)] = list(rebuild_snapshots(pack["snapshots"], lambda ids: {parent_snapshot: parent_manifest}))
    assert travelled["base"] == parent_snapshot
    assert tree.manifest == manifest and tree.snapshot_id() == commit["snapshot_id"]

    # The same tree again: a delta would name itself as its base, so it travels in full.
    _, same = make_commit(
        parent_manifest, None, branch="main", message="m", author="a", base=(parent_snapshot, parent_manifest)
    )
    assert same["manifest"] == parent_manifest and "base" not in same


def _history_pack(tmp_path: Path, *, base_known: bool = True) -> tuple[Path, dict, dict, dict]:
    """Write a fetch pack of two commits whose snapshots are deltas: c2 against a local s1, c3 against c2's."""
    m1 = {f"f{i}.txt": fake_id(f"one {i}") for i in range(20)}
    m2 = {**m1, "f0.txt": fake_id("two")}
    m3 = {k: v for k, v in m2.items() if k != "f1.txt"} | {"g.txt": fake_id("three")}
    s1, s2, s3 = (compute_snapshot_id(m) for m in (m1, m2, m3))
    c1 = fake_id("c1")
    when = "2026-01-01T00:00:00+00:00"
    c2 = {"commit_id": compute_commit_id([c1], s2, "two", when), "parent_ids": [c1], "snapshot_id": s2,
          "branch": "main", "message": "two", "author": "a", "committed_at": when}  # fmt: skip
    c3 = {"commit_id": compute_commit_id([c2["commit_id"]], s3, "three", when), "parent_ids": [c2["commit_id"]],
          "snapshot_id": s3, "branch": "main", "message": "three", "author": "a", "committed_at": when}  # fmt: skip
    data = build_wire_mpack(
        {
            "commits": [c2, c3],
            "snapshots": [snapshot_dict(s2, m2, base=(s1, m1)), snapshot_dict(s3, m3, base=(s2, m2))],
            "blobs": [],
            "branch_heads": {"main": c3["commit_id"]},
        }
    )
    path = tmp_path / "fetch.mpack"
    path.write_bytes(data)
    return path, {s1: m1}, {s2: m2, s3: m3}, {"c3": c3["commit_id"]}


def test_verifying_a_pack_rebuilds_deltas_against_manifests_held_locally(tmp_path):
    path, local, expected, _ = _history_pack(tmp_path)
    asked: list[list[str]] = []
    verified = verify_pack(path, lookup=lambda ids: asked.append(ids) or local)
    assert asked == [list(local)], "the lookup is asked once, for the bases outside the pack"
    assert verified.manifests == expected
    assert verified.rebuilt() == expected
    assert all("base" in s for s in verified.contents.snapshots), "contents stay as they travelled"


def test_a_pack_whose_delta_base_is_unknown_is_refused(tmp_path):
    path, _local, _expected, _ = _history_pack(tmp_path)
    with pytest.raises(UnknownBase) as caught:
        verify_pack(path, lookup=lambda ids: {})
    assert caught.value.exit_code == EXIT_SERVER and "not in the pack nor held" in caught.value.message
    with pytest.raises(UnknownBase):
        verify_pack(path)  # no lookup at all: nothing is held


def test_a_delta_that_does_not_rebuild_its_snapshot_id_is_refused(tmp_path):
    path, local, _expected, _ = _history_pack(tmp_path)
    [(s1, m1)] = local.items()
    wrong = {s1: {**m1, "f5.txt": fake_id("tampered")}}
    with pytest.raises(ClientError) as caught:
        verify_pack(path, lookup=lambda ids: wrong)
    assert not isinstance(caught.value, UnknownBase)
    message = caught.value.message
    assert caught.value.exit_code == EXIT_SERVER and message.startswith("integrity check failed: snapshots[0] (")


def test_the_pack_store_keeps_full_manifests_beside_delta_packs(tmp_path):
    path, local, expected, heads = _history_pack(tmp_path)
    packs = tmp_path / "work" / STATE_DIR / PACKS_DIR
    packs.mkdir(parents=True)
    stored = packs / "a.mpack"
    path.rename(stored)
    write_manifests(stored, verify_pack(stored, lookup=lambda ids: local).rebuilt())
    store = PackStore.open(tmp_path / "work")
    _s2, s3 = expected
    assert store.manifest_of(heads["c3"]) == expected[s3]
    assert store.lookup(list(expected)) == expected

    # Without the file beside it, a delta is rebuilt from a base some pack holds, or left unknown.
    manifests_path(stored).unlink()
    store = PackStore.open(tmp_path / "work")
    assert store.lookup(list(expected)) == {}
    [(s1, m1)] = local.items()
    base_pack = packs / "b.mpack"
    base_pack.write_bytes(
        build_wire_mpack({"commits": [], "snapshots": [snapshot_dict(s1, m1)], "blobs": [], "branch_heads": {}})
    )
    assert PackStore.open(tmp_path / "work").lookup(list(expected)) == expected


# --- snapshot deltas against the fake hub ---------------------------------------------------------------


def test_push_sends_a_delta_when_the_hub_lists_the_capability(hub_factory, tmp_path):
    hub, url = hub_factory([SNAPSHOT_DELTA, "something-else"])
    source = tmp_path / "source"
    make_tree(source)
    first = operations.push(source, url, token=TOKEN, message="first", author="me")
    assert first.pushed and not first.delta and "manifest" in hub.pushed[0]["snapshots"][0], "a root commit is full"

    (source / "dir0" / "file-0.txt").write_text("changed")
    (source / "dir1" / "file-1.txt").unlink()
    seen: list[str] = []

    def hook(name: str) -> contextlib.AbstractContextManager[None]:
        seen.append(name)
        return contextlib.nullcontext()

    second = operations.push(source, url, token=TOKEN, message="second", author="me", phases=hook)
    assert second.delta and second.parent == first.head and second.blobs == 1
    snapshot = hub.pushed[1]["snapshots"][0]
    assert snapshot["base"] == hub.commits[first.head]["snapshot_id"]
    assert set(snapshot["set"]) == {"dir0/file-0.txt"} and snapshot["delete"] == ["dir1/file-1.txt"]
    assert hub.snapshots[hub.commits[second.head]["snapshot_id"]] == manifest_of(tree_of(source))
    assert seen == ["scan", "refs", "filter", "pack", "upload", "push", "state"]
    assert set(second.phases) == set(seen) and all(s >= 0 for s in second.phases.values())

    # Nothing changed: nothing to push. The same tree on a new branch: a full snapshot (a delta would name itself).
    assert not operations.push(source, url, token=TOKEN, author="me").pushed
    third = operations.push(source, url, token=TOKEN, branch="copy", author="me")
    assert third.pushed and not third.delta and "manifest" in hub.pushed[2]["snapshots"][0]


def test_push_sends_full_snapshots_to_a_hub_without_the_capability(hub_factory, tmp_path):
    hub, url = hub_factory(None)
    source = tmp_path / "source"
    make_tree(source)
    operations.push(source, url, token=TOKEN, author="me")
    (source / "dir0" / "file-0.txt").write_text("changed")
    result = operations.push(source, url, token=TOKEN, author="me")
    assert result.pushed and not result.delta
    assert [("manifest" in p["snapshots"][0]) for p in hub.pushed] == [True, True]


def test_clone_fetch_and_pull_with_deltas(hub_factory, tmp_path, monkeypatch):
    hub, url = hub_factory([SNAPSHOT_DELTA])
    source, clone = tmp_path / "source", tmp_path / "clone"
    make_tree(source)
    for step in range(3):
        (source / f"step-{step}.txt").write_text(f"step {step}")
        assert operations.push(source, url, token=TOKEN, author="me").pushed
    cloned = operations.clone(url, clone)
    assert hub.fetches[-1]["capabilities"] == [SNAPSHOT_DELTA]
    assert ["base" in s for s in hub.served[-1]["snapshots"]] == [False, True, True], "deltas within the pack"
    assert cloned.commits == 3 and tree_of(clone) == tree_of(source)
    assert set(cloned.phases) >= {"refs", "fetch", "download", "verify", "write"}

    # Two new commits, fetched: their deltas are against the clone's head (held in its state), then each other.
    (source / "dir0" / "file-0.txt").write_text("four")
    operations.push(source, url, token=TOKEN, author="me")
    (source / "dir2" / "file-2.txt").unlink()
    fifth = operations.push(source, url, token=TOKEN, author="me")
    packs = clone / STATE_DIR / PACKS_DIR
    before = set(packs.glob("*.mpack"))
    code, out, err = run("fetch", str(clone))
    assert code == 0, err
    assert out.startswith("fetched 2 commits, 1 blob ")
    assert hub.fetches[-1]["capabilities"] == [SNAPSHOT_DELTA] and cloned.head in hub.fetches[-1]["have"]
    served = hub.served[-1]["snapshots"]
    assert [s.get("base") for s in served] == [hub.commits[cloned.head]["snapshot_id"], served[0]["snapshot_id"]]
    [fetched_pack] = set(packs.glob("*.mpack")) - before
    assert manifests_path(fetched_pack).exists(), "the full manifests of its deltas are kept beside it"
    assert PackStore.open(clone).manifest_of(fifth.head) == manifest_of(tree_of(source))

    # One more commit, fetched before pulling: its base is a snapshot only the packs hold, not the state.
    # The manifest kept beside the last fetched pack has it: no pack is opened and indexed to find it.
    (source / "six.txt").write_text("six")
    sixth = operations.push(source, url, token=TOKEN, author="me")
    opened: list[Path] = []
    open_store = PackStore.open.__func__
    monkeypatch.setattr(PackStore, "open", classmethod(lambda cls, root: opened.append(root) or open_store(cls, root)))
    assert run("fetch", str(clone))[0] == 0
    assert opened == [], "the base came from the manifests kept beside the packs"
    monkeypatch.undo()
    assert hub.served[-1]["snapshots"][0]["base"] == hub.commits[fifth.head]["snapshot_id"]
    assert fetched_pack.exists()

    code, out, err = run("pull", str(clone))
    assert code == 0, err
    assert out.startswith(f"updated main {hex_of(cloned.head)[:12]} → {hex_of(sixth.head)[:12]}: ")
    assert tree_of(clone) == tree_of(source)

    # The clone pushes back on top of what it pulled: a delta against the pulled head.
    (clone / "from-clone.txt").write_text("hello")
    back = operations.push(clone, url, token=TOKEN, author="me")
    assert back.delta and back.parent == sixth.head


def test_fetch_and_pull_from_a_hub_without_the_capability(hub_factory, tmp_path):
    hub, url = hub_factory(None)
    source, clone = tmp_path / "source", tmp_path / "clone"
    make_tree(source)
    operations.push(source, url, token=TOKEN, author="me")
    operations.clone(url, clone)
    (source / "dir3" / "file-3.txt").write_text("changed")
    operations.push(source, url, token=TOKEN, author="me")
    pulled = operations.pull(clone)
    assert pulled.written == 1 and tree_of(clone) == tree_of(source)
    assert hub.fetches and all("capabilities" not in body for body in hub.fetches)
    assert not list((clone / STATE_DIR / PACKS_DIR).glob("*.manifests"))
    assert operations.pull(clone).up_to_date


def test_deltas_against_a_base_the_folder_lacks_are_fetched_again_in_full(hub_factory, tmp_path):
    hub, url = hub_factory([SNAPSHOT_DELTA])
    source, clone = tmp_path / "source", tmp_path / "clone"
    make_tree(source)
    operations.push(source, url, token=TOKEN, author="me")
    operations.clone(url, clone)
    (source / "dir0" / "file-0.txt").write_text("changed")
    operations.push(source, url, token=TOKEN, author="me")
    head = hub.heads["main"]
    unknown = {**hub.snapshots[hub.commits[head]["snapshot_id"]], "elsewhere.txt": fake_id("elsewhere")}
    hub.foreign_base = (compute_snapshot_id(unknown), unknown)
    notes = Notes()
    result = operations.fetch(clone, out=notes)
    assert result.commits == 1
    assert [("capabilities" in body) for body in hub.fetches[-2:]] == [True, False]
    assert any("downloading full snapshots" in n for n in notes.notes), notes.notes
    assert len(list((clone / STATE_DIR / PACKS_DIR).glob("*.mpack"))) == 2, "the refused pack is not kept"
    assert operations.pull(clone).written == 1 and tree_of(clone) == tree_of(source)


def test_pull_still_refuses_to_overwrite_local_changes(hub_factory, tmp_path):
    hub, url = hub_factory([SNAPSHOT_DELTA])
    source, clone = tmp_path / "source", tmp_path / "clone"
    make_tree(source)
    operations.push(source, url, token=TOKEN, author="me")
    operations.clone(url, clone)
    (source / "dir0" / "file-0.txt").write_text("upstream")
    operations.push(source, url, token=TOKEN, author="me")
    (clone / "dir0" / "file-0.txt").write_text("local")
    code, _, err = run("pull", str(clone))
    assert code == EXIT_CONFLICT and "modified here and upstream" in err
    assert (clone / "dir0" / "file-0.txt").read_text() == "local"


def test_the_client_retries_a_connection_the_hub_dropped_before_answering():
    """The first connection is closed without a word (an idle keep-alive a proxy dropped); the retry gets the answer."""
    calls: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            calls.append(self.path)
            if len(calls) == 1:
                self.connection.shutdown(2)
                self.close_connection = True
                return
            body = msgpack.packb({"repo_id": "r", "default_branch": "main", "branch_heads": {}})
            self.send_response(200)
            self.send_header("Content-Type", "application/x-msgpack")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from musehub_client.http import HubClient

        with HubClient(f"http://127.0.0.1:{server.server_port}/alice/songs") as client:
            assert client.refs()["branch_heads"] == {}
        assert calls == ["/alice/songs/refs", "/alice/songs/refs"]
    finally:
        server.shutdown()
        server.server_close()


# --- several threads, the stat cache, progress (issue 14's client direction; issue 13) ---------------


def big_tree(root: Path, count: int = 400) -> None:
    """Files of mixed kinds: text (compresses), random (does not), tiny (below the zstd threshold)."""
    for i in range(count):
        path = root / f"d{i % 9}" / f"f{i}.{('txt', 'bin', 'tiny')[i % 3]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i % 3 == 0:
            path.write_text(f"bar {i} " * (50 + i * 7))
        elif i % 3 == 1:
            path.write_bytes(os.urandom(600 + i * 31))
        else:
            path.write_bytes(str(i).encode())


def test_the_client_encodes_blobs_by_the_cores_rule():
    from musehub_client.packs import ENCODE_LEVEL, encode_many
    from musehub_core.mpack import encode_blob

    samples = [b"", b"x" * 511, b"x" * 512, os.urandom(4096), b"text " * 5000, os.urandom(2000) + b"\0" * 300]
    compressor = zstandard.ZstdCompressor(level=ENCODE_LEVEL)
    for threads in (1, 3):  # a batch compressed at once, inside zstandard: the same bytes
        batch = encode_many(compressor, samples, threads)
        assert [(bytes(stored), encoding) for stored, encoding in batch] == [encode_blob(raw) for raw in samples]
    assert encode_many(compressor, [b"", b"tiny"], 2) == [(b"", ""), (b"tiny", "")]


def test_scanning_and_packing_on_several_threads_gives_what_one_thread_gives(tmp_path, monkeypatch):
    from musehub_client import files, worktree

    root = tmp_path / "tree"
    big_tree(root)
    one = worktree.scan_folder(root, workers=1)
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)  # no stat cache: every file is read again
    four = worktree.scan_folder(root, workers=4)
    assert four.manifest == one.manifest == manifest_of(tree_of(root))
    assert four.hashed == one.hashed == 400

    commit, snapshot = make_commit(one.manifest, None, branch="main", message="m", author="a")
    blob_paths = {oid: path for path, oid in one.manifest.items()}
    packs = []
    for workers, native in ((1, True), (4, True), (4, False)):
        with monkeypatch.context() as patched:
            if not native:  # the reads in Python, as without a C compiler
                patched.setattr(files, "native", None)
            out = io.BytesIO()
            key, size = build_push_pack(
                out, root, commit=commit, snapshot=snapshot, blob_paths=blob_paths, branch="main", workers=workers
            )
        packs.append((key, size, out.getvalue()))
    assert packs[0] == packs[1] == packs[2], "the same bytes, in the same order"
    parsed = parse_wire_mpack(packs[1][2])
    assert {b["object_id"] for b in parsed["blobs"]} == set(blob_paths)
    assert {b.get("encoding") or "" for b in parsed["blobs"]} == {"", "zstd"}


def test_a_file_removed_or_replaced_by_a_symlink_while_packing_stops_the_push(tmp_path):
    root = tmp_path / "tree"
    big_tree(root)
    manifest = manifest_of(tree_of(root))
    commit, snapshot = make_commit(manifest, None, branch="main", message="m", author="a")
    gone: list[str] = []
    for name, change in (("f190.bin", Path.unlink), ("f181.bin", lambda p: p.unlink() or p.symlink_to(root))):
        change(root / "d1" / name)
        with pytest.raises(ClientError, match=f"d1/{name} was removed or replaced while pushing"):
            build_push_pack(
                io.BytesIO(),
                root,
                commit=commit,
                snapshot=snapshot,
                blob_paths={oid: path for path, oid in manifest.items() if path not in gone},
                branch="main",
                workers=2,
            )
        gone.append(f"d1/{name}")


def test_a_file_edited_while_packing_on_several_threads_stops_the_push(tmp_path):
    root = tmp_path / "tree"
    big_tree(root)
    manifest = manifest_of(tree_of(root))
    (root / "d1" / "f199.bin").write_bytes(b"edited after the scan")
    commit, snapshot = make_commit(manifest, None, branch="main", message="m", author="a")
    with pytest.raises(ClientError, match="f199.bin changed while pushing"):
        build_push_pack(
            io.BytesIO(),
            root,
            commit=commit,
            snapshot=snapshot,
            blob_paths={oid: path for path, oid in manifest.items()},
            branch="main",
            workers=4,
        )


def test_an_incremental_push_reads_only_the_files_whose_stat_changed(hub_factory, tmp_path):
    hub, url = hub_factory([SNAPSHOT_DELTA])
    source = tmp_path / "source"
    big_tree(source)
    past = 1_600_000_000
    for path in source.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    first = operations.push(source, url, token=TOKEN, author="me")
    assert first.hashed == 400 and first.blobs == 400
    (source / "d0" / "f0.txt").write_text("changed")
    (source / "d1" / "f10.bin").write_bytes(os.urandom(100))
    (source / "new.txt").write_text("new")
    second = operations.push(source, url, token=TOKEN, author="me")
    assert (second.hashed, second.blobs) == (3, 3), "three files read, three blobs sent"
    assert hub.snapshots[hub.commits[second.head]["snapshot_id"]] == manifest_of(tree_of(source))


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_progress_redraws_in_place_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(cli, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(cli, "PROGRESS_LOG_INTERVAL", 0.0)
    for terminal in (True, False):
        stream = _Stream(terminal)
        progress = cli.Progress("upload", 8 * 1024 * 1024, stream)
        for _ in range(8):
            progress.update(1024 * 1024)
        progress.close()
        text = stream.getvalue()
        assert "100% (8.0 MiB / 8.0 MiB)" in text
        if terminal:
            assert text.count("\r") >= 8 and text.endswith("\n")
        else:
            assert "\r" not in text and len(text.splitlines()) >= 8


def test_progress_into_a_log_writes_a_line_at_most_every_few_seconds():
    stream = _Stream(False)
    progress = cli.Progress("download", 64 * 1024 * 1024, stream)
    for _ in range(64):
        progress.update(1024 * 1024)
    progress.close()
    assert stream.getvalue() == "", "a quick transfer leaves no progress lines in a log"


def _checkout_pack(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, str]:
    """Write a one-commit pack of *files* (as a push builds it) and return (its path, the commit id)."""
    source = tmp_path / "pack-source"
    for relative, data in files.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    manifest = manifest_of(files)
    commit, snapshot = make_commit(manifest, None, branch="main", message="m", author="a")
    path = tmp_path / "checkout.mpack"
    blob_paths = {oid: relative for relative, oid in manifest.items()}
    with open(path, "wb") as out:
        build_push_pack(out, source, commit=commit, snapshot=snapshot, blob_paths=blob_paths, branch="main")
    return path, commit["commit_id"]


def test_a_clone_writes_its_files_in_batches_while_the_pack_arrives(tmp_path, monkeypatch):
    from musehub_client import packs, worktree

    monkeypatch.setattr(worktree.BatchWriter, "FILES", 8)  # 60 files: several batches
    source = tmp_path / "source"
    big_tree(source, 60)
    files = tree_of(source)
    files["copy/same.bin"] = files["d1/f1.bin"]  # one blob, two paths
    path, head = _checkout_pack(tmp_path, files)
    target = tmp_path / "target"
    target.mkdir()
    checkout = worktree.ArrivingCheckout(target, head, Silent())
    seen: list[tuple[str, int]] = []  # (blob, files on disk when it arrived)
    arrived = checkout.blob

    def blob(entry, raw):
        seen.append((entry.object_id, sum(1 for p in target.rglob("*") if p.is_file())))
        arrived(entry, raw)

    checkout.blob = blob  # type: ignore[method-assign]
    verification = packs._Verification(None, [head], checkout)
    with open(path, "rb") as handle:
        contents = verification.index(handle)

    assert len(seen) == len(contents.blobs) == len(set(manifest_of(files).values()))
    counts = [count for _, count in seen]
    assert counts == sorted(counts) and counts[0] == 0 < counts[-1], "files appear while blobs still arrive"
    checkout.finish(lambda oid: pytest.fail("every blob came after the history"), set())
    assert tree_of(target) == files


def test_a_download_cut_short_removes_the_files_it_wrote_and_is_asked_for_again(hub_factory, tmp_path, monkeypatch):
    from musehub_client import worktree

    hub, url = hub_factory([SNAPSHOT_DELTA])
    source = tmp_path / "source"
    big_tree(source, 120)
    for i in range(6):  # 3 MiB that does not compress: the cut comes after the first pieces arrived
        (source / f"big-{i}.bin").write_bytes(os.urandom(512 * 1024))
    assert operations.push(source, url, token=TOKEN, author="me").pushed
    written_before_retry: list[int] = []
    empty = worktree.empty_folder

    def counting_empty(root, **kwargs):  # the abandoned attempt's files, once its writes have landed
        written_before_retry.append(sum(1 for p in root.rglob("*") if p.is_file() and STATE_DIR not in p.parts))
        empty(root, **kwargs)

    monkeypatch.setattr(worktree, "empty_folder", counting_empty)
    monkeypatch.setattr(worktree.BatchWriter, "FILES", 1)  # a batch per file: they land before the cut
    hub.cut_downloads = 1

    cloned = operations.clone(url, tmp_path / "clone")

    assert hub.downloads == 2, "asked once more"
    assert written_before_retry and written_before_retry[0] > 0, "files were written while the first pack arrived"
    assert tree_of(tmp_path / "clone") == tree_of(source) and cloned.files == 126
    assert not list((tmp_path / "clone" / STATE_DIR / PACKS_DIR).glob("*.part")), "no partial download left"

    hub.cut_downloads = 3  # every attempt cut: the clone fails and leaves nothing behind
    with pytest.raises(ClientError, match="cut short"):
        operations.clone(url, tmp_path / "clone2")
    assert not (tmp_path / "clone2").exists()


def test_an_arriving_checkout_refuses_bad_paths_and_follows_no_symlink(tmp_path):
    from musehub_client import worktree

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / "f0.txt").symlink_to(outside)  # a symlink where a file goes: never written through
    worktree.prepare_new_tree(planted, {"f0.txt": blob_id(b"x")})
    with pytest.raises(FileExistsError):
        worktree.write_new_file(planted, "f0.txt", b"x")
    assert outside.read_text() == "keep me"

    with pytest.raises(ClientError, match="reserved"):
        worktree.prepare_new_tree(tmp_path, {".musehub/state.json": blob_id(b"x")})
    with pytest.raises(ClientError, match="integrity"):
        worktree.prepare_new_tree(tmp_path / "t3", {"../escape.txt": blob_id(b"x")})
    assert not (tmp_path / "escape.txt").exists()


def test_blobs_before_the_history_are_written_at_the_end_and_missing_ones_fail_the_checkout(tmp_path):
    from musehub_client import packs, worktree

    files = {"a.txt": b"alpha", "sub/b.txt": b"beta"}
    manifest = manifest_of(files)
    commit, snapshot = make_commit(manifest, None, branch="main", message="m", author="a")
    blobs = [{"object_id": blob_id(data), "content": data} for data in files.values()]
    # Blobs first: not how MuseHub writes a pack, but a valid one. The files are written once it is read.
    path = tmp_path / "blobs-first.mpack"
    path.write_bytes(msgpack.packb({"blobs": blobs, "commits": [commit], "snapshots": [snapshot]}, use_bin_type=True))
    target = tmp_path / "target"
    target.mkdir()
    checkout = worktree.ArrivingCheckout(target, commit["commit_id"], Silent())
    with open(path, "rb") as handle:
        contents = packs._Verification(None, None, checkout).index(handle)
    assert checkout.manifest == manifest and tree_of(target) == {}
    with packs.PackReader(path) as reader:
        by_id = {entry.object_id: entry for entry in contents.blobs}
        checkout.finish(lambda oid: reader.read(by_id[oid]), by_id)
    assert tree_of(target) == files

    # A pack without the blob of sub/b.txt: the checkout refuses to finish.
    path.write_bytes(build_wire_mpack({"commits": [commit], "snapshots": [snapshot], "blobs": blobs[:1]}))
    checkout.abandon()
    assert list(target.iterdir()) == []
    with open(path, "rb") as handle:
        packs._Verification(None, None, checkout).index(handle)
    with pytest.raises(ClientError, match="lacks blob"):
        checkout.finish(lambda oid: b"", set())
    assert tree_of(target) == {"a.txt": b"alpha"}, "what arrived is written (and waited for) all the same"


def test_a_scan_calls_before_reading_once_the_walk_is_done_and_no_file_was_read(tmp_path, monkeypatch):
    """A push raises there an error the hub already answered, before hashing a big tree for nothing."""
    from musehub_client import worktree
    from musehub_client.threads import Background

    root = tmp_path / "tree"
    make_tree(root, count=12)
    reads = spy_reads(monkeypatch)
    seen: list[tuple[int, int]] = []
    worktree.scan_folder(root, workers=1, before_reading=lambda count: seen.append((count, len(reads))))
    assert seen == [(12, 0)] and len(reads) == 12

    def refused() -> None:
        raise ClientError("the hub refused the token", 3)

    failed = Background(refused)
    with pytest.raises(ClientError, match="refused the token"):
        failed.result()
    shutil.rmtree(root / STATE_DIR, ignore_errors=True)  # no stat cache: every file would be read
    reads.clear()
    with pytest.raises(ClientError, match="refused the token"):
        worktree.scan_folder(root, workers=1, before_reading=lambda _count: failed.raise_if_failed())
    assert reads == [], "nothing was hashed"


def test_a_tree_named_through_a_symlink_is_scanned_and_one_that_cannot_be_read_is_an_error(tmp_path):
    """The folder a user names may be a symlink (followed); a tree that cannot be read never scans as empty."""
    from musehub_client import worktree

    root = tmp_path / "tree"
    make_tree(root, count=8)
    (root / "sub").mkdir()
    (root / "sub" / "f.txt").write_text("f")
    (root / "link-to-sub").symlink_to(root / "sub")
    link = tmp_path / "link-to-tree"
    link.symlink_to(root)
    scan = worktree.scan_folder(link, workers=1)
    assert scan.manifest == worktree.scan_folder(root, workers=1).manifest
    assert len(scan.manifest) == 9 and "link-to-sub/f.txt" not in scan.manifest, "symlinks below it are not followed"
    assert [path for path, _ in scan.skipped.symlinks] == ["link-to-sub"]
    with pytest.raises(ClientError, match="cannot read"):
        worktree.scan_folder(tmp_path / "gone", workers=1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_files_and_folders_the_client_cannot_read_are_reported_not_dropped_silently(tmp_path):
    from musehub_client import worktree
    from musehub_client.operations import skipped_warning

    root = tmp_path / "tree"
    make_tree(root, count=8)
    (root / "locked.txt").write_text("secret")
    (root / "locked.txt").chmod(0)
    (root / "closed").mkdir()
    (root / "closed" / "inside.txt").write_text("x")
    (root / "closed").chmod(0)
    try:
        scan = worktree.scan_folder(root, workers=1)
    finally:
        (root / "locked.txt").chmod(0o644)
        (root / "closed").chmod(0o755)
    assert sorted(path for path, _ in scan.skipped.unreadable) == ["closed", "locked.txt"]
    assert "locked.txt" not in scan.manifest and len(scan.manifest) == 8
    warning = skipped_warning(root, scan.skipped)
    assert (
        "2 unreadable entries" in warning
        and "fix its permissions" in warning
        and "  locked.txt  (unreadable" in warning
    )


@pytest.mark.parametrize(
    "path", [".musehub/state.json", ".MuseHub/state.json", ".MUSEHUB/packs/x", ".musehub./state.json", ".musehub /s"]
)
def test_no_snapshot_path_may_write_into_the_clients_own_folder_whatever_its_case(tmp_path, path):
    # On a file system that ignores case (macOS, Windows) .MuseHub/state.json is the client's state file:
    # a branch holding it could point the folder's remote, and so the token, at another host.
    from musehub_client import worktree

    assert worktree.is_reserved(path)
    with pytest.raises(ClientError, match="reserved"):
        worktree.write_file(tmp_path, path, b'{"url": "https://elsewhere.example/x/y"}')
    assert not any(tmp_path.iterdir())
    assert not worktree.is_reserved("music/.musehub/notes.txt"), "only the top-level folder is the client's"


def test_run_batches_keeps_order_gives_threads_only_big_files_and_passes_errors_on(monkeypatch):
    import threading

    from musehub_client import threads

    monkeypatch.setattr(threads, "BATCH_FILES", 3)
    sizes = [10, 10, 100_000, 200_000, 10, 300_000, 10, 10, 10, 10, 400_000]
    items = [(f"k{i}", f"p{i}", size) for i, size in enumerate(sizes)]
    seen: list[tuple[list[str], str]] = []

    def work(batch):
        seen.append(([key for key, _ in batch], threading.current_thread().name))
        return [key for key, _ in batch]

    results = list(threads.run_batches(work, items, workers=2, name="test-pool"))
    assert [key for batch in results for key in batch] == [key for key, _, _ in items], "order kept"
    for keys, thread in seen:
        big = {sizes[int(key[1:])] >= threads.PARALLEL_MIN_BYTES for key in keys}
        assert len(big) == 1, f"a batch holds only big or only small files: {keys}"
        assert thread.startswith("test-pool") == big.pop(), (keys, thread)
    assert max(len(keys) for keys, _ in seen) <= 3
    assert [key for batch in threads.run_batches(work, items, workers=1) for key in batch] == [k for k, _, _ in items]

    def fail(batch):
        if any(key == "k5" for key, _ in batch):
            raise OSError("disk full")
        return batch

    with pytest.raises(OSError, match="disk full"):
        list(threads.run_batches(fail, items, workers=2))


def test_the_state_keeps_its_manifest_in_a_file_named_by_its_hash_and_rewrites_it_only_when_it_changed(tmp_path):
    import json

    from musehub_client.state import State
    from musehub_core.ids import compute_commit_id

    manifest = manifest_of({f"d{i % 7}/f{i}.txt": f"{i}".encode() for i in range(300)})
    head = compute_commit_id([], compute_snapshot_id(manifest), "m", "t")
    State(url="http://hub.test/a/b", branch="main", head=head, manifest=manifest, commits=[head]).save(tmp_path)
    folder = tmp_path / STATE_DIR
    data = json.loads((folder / "state.json").read_text())
    assert "manifest" not in data and data["snapshot_id"] == compute_snapshot_id(manifest)
    (kept,) = folder.glob("manifest-*.msgpack")
    assert data["manifest_file"] == kept.name

    # A fetch: only fetched_head and the commits change; the manifest file is not written again.
    loaded = State.load(tmp_path)
    assert loaded.manifest == manifest and loaded.snapshot_id() == compute_snapshot_id(manifest)
    before = kept.stat().st_mtime_ns, kept.stat().st_ino
    loaded.fetched_head = fake_id("fetched")
    loaded.commits.append(loaded.fetched_head)
    loaded.save(tmp_path)
    assert (kept.stat().st_mtime_ns, kept.stat().st_ino) == before
    assert State.load(tmp_path).fetched_head == fake_id("fetched")

    # A pull: a new manifest goes to a new file and the old one is removed.
    loaded.manifest = {**manifest, "new.txt": blob_id(b"new")}
    loaded.save(tmp_path)
    (now,) = folder.glob("manifest-*.msgpack")
    assert now != kept and State.load(tmp_path).snapshot_id() == compute_snapshot_id(loaded.manifest)

    # Damaged bytes are found by the name's hash.
    now.write_bytes(now.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ClientError, match="damaged"):
        State.load(tmp_path)


def test_a_state_written_by_an_older_client_is_read_and_rewritten_the_new_way(tmp_path):
    import json

    from musehub_client.state import State

    manifest = manifest_of({"a.txt": b"a", "b/c.txt": b"c"})
    head = fake_id("head")
    folder = tmp_path / STATE_DIR
    folder.mkdir()
    old = {"url": "http://hub.test/a/b", "branch": "main", "head": head, "manifest": manifest, "commits": [head]}
    (folder / "state.json").write_text(json.dumps(old))

    state = State.load(tmp_path)
    assert state.manifest == manifest and state.snapshot_id() == compute_snapshot_id(manifest)
    state.save(tmp_path)
    data = json.loads((folder / "state.json").read_text())
    assert "manifest" not in data and (folder / data["manifest_file"]).is_file()
    assert State.load(tmp_path).manifest == manifest
