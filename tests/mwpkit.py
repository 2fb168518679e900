"""A test client that speaks MWP exactly as the muse CLI 0.1.5 does.

What it copies from the CLI: urllib requests with ``Accept: application/x-msgpack,
application/json`` and msgpack bodies; bare-hex ids computed with the CLI's
formulas (NUL-joined, ``committed_at`` from ``isoformat()``); CommitDicts with
``parent_commit_id``/``parent2_commit_id`` and the optional fields; push call
order refs → filter-objects → presign (objects over 64 KiB) → raw PUTs with
urllib's default form content type and no token → push/objects in chunks of
400 → push with ``objects: []``; clone without a token; fetch with every local
commit as ``have``; pull negotiating 64 ids a round.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import msgpack

CHUNK_OBJECTS = 400
LARGE_OBJECT_THRESHOLD = 64 * 1024
NEGOTIATE_DEPTH = 64
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
_SEP = "\x00"


class HttpError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:400].decode(errors='replace')}")
        self.status = status
        self.body = body


def object_id(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def snapshot_id(manifest: dict[str, str]) -> str:
    return hashlib.sha256(_SEP.join(sorted(f"{p}{_SEP}{o}" for p, o in manifest.items())).encode()).hexdigest()


def commit_id(parents: list[str], snap: str, message: str, committed_at: str) -> str:
    payload = _SEP.join([_SEP.join(sorted(parents)), snap, message, committed_at])
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class LocalRepo:
    """What a muse working copy holds: objects, snapshots, commits and branch heads (bare hex)."""

    objects: dict[str, bytes] = field(default_factory=dict)
    snapshots: dict[str, dict] = field(default_factory=dict)
    commits: dict[str, dict] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)

    def commit(self, files: dict[str, bytes], *, message: str, branch: str = "main", parent2: str | None = None) -> str:
        manifest = {}
        for path, content in files.items():
            oid = object_id(content)
            self.objects[oid] = content
            manifest[path] = oid
        snap = snapshot_id(manifest)
        self.snapshots[snap] = {"snapshot_id": snap, "manifest": manifest, "created_at": _now()}
        parent = self.heads.get(branch)
        parents = [p for p in (parent, parent2) if p]
        committed_at = _now()
        cid = commit_id(parents, snap, message, committed_at)
        self.commits[cid] = {
            "commit_id": cid, "repo_id": "local-uuid", "branch": branch, "snapshot_id": snap, "message": message,
            "committed_at": committed_at, "parent_commit_id": parent, "parent2_commit_id": parent2,
            "author": "alice", "metadata": {"k": "v"}, "structured_delta": {"domain": "code", "ops": []},
            "sem_ver_bump": "minor", "breaking_changes": ["x"], "agent_id": "agent-7", "model_id": "",
            "toolchain_id": "", "prompt_hash": "", "signature": "", "signer_key_id": "", "format_version": 5,
            "reviewed_by": ["bob"], "test_runs": 3,
        }  # fmt: skip
        self.heads[branch] = cid
        return cid

    def manifest_at(self, cid: str) -> dict[str, str]:
        return self.snapshots[self.commits[cid]["snapshot_id"]]["manifest"]

    def files_at(self, cid: str) -> dict[str, bytes]:
        return {path: self.objects[oid] for path, oid in self.manifest_at(cid).items()}

    def bundle_from(self, head: str, have: set[str]) -> list[dict]:
        """The CLI's BFS from head, parent first then parent2, stopping at have."""
        order, queue, seen = [], [head], set()
        while queue:
            cid = queue.pop(0)
            if cid in seen or cid in have or cid not in self.commits:
                continue
            seen.add(cid)
            order.append(self.commits[cid])
            queue.extend(
                p for p in (self.commits[cid]["parent_commit_id"], self.commits[cid]["parent2_commit_id"]) if p
            )
        return order


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class MwpClient:
    """HTTP calls exactly as the CLI's HttpTransport makes them."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.calls: list[str] = []
        # None sends urllib's default form content type, as the CLI does; moto's S3 server
        # mishandles that (it stores nothing or never answers), so S3 tests set octet-stream.
        self.presign_content_type: str | None = None

    def _request(self, method: str, suffix: str, payload: Any = None, *, token: bool = True) -> dict:
        body = msgpack.packb(payload, use_bin_type=True) if payload is not None else None
        headers = {"Accept": "application/x-msgpack, application/json"}
        if body is not None:
            headers["Content-Type"] = "application/x-msgpack"
        if token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.calls.append(f"{method} /{suffix}")
        request = urllib.request.Request(f"{self.url}/{suffix}", data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise HttpError(exc.code, exc.read()) from None
        assert len(raw) <= MAX_RESPONSE_BYTES
        decoded = msgpack.unpackb(raw, raw=False) if raw else {}
        return decoded if isinstance(decoded, dict) else {}

    def refs(self, *, token: bool = True) -> dict:
        return self._request("GET", "refs", token=token)

    def push(self, local: LocalRepo, branch: str = "main", *, force: bool = False) -> dict:
        """The CLI's push: returns the /push reply (raises HttpError on 4xx/5xx)."""
        head = local.heads[branch]
        try:
            remote = self.refs().get("branch_heads", {})
        except HttpError:
            remote = {}
        have = {c for c in remote.values() if c in local.commits} - {head}
        commits = local.bundle_from(head, have)
        snaps = sorted({c["snapshot_id"] for c in commits})
        object_ids = sorted({oid for s in snaps for oid in local.snapshots[s]["manifest"].values()})
        try:
            missing = self._request("POST", "filter-objects", {"object_ids": object_ids}).get("missing", [])
        except HttpError:
            missing = object_ids
        large = [oid for oid in missing if len(local.objects[oid]) > LARGE_OBJECT_THRESHOLD]
        small = [oid for oid in missing if oid not in large]
        if large:
            reply = self._request("POST", "presign", {"object_ids": large, "direction": "put"})
            presigned = reply.get("presigned", {})
            for oid, url in presigned.items():
                self.put_presigned(url, local.objects[oid])
            small += [oid for oid in large if oid not in presigned]
        for start in range(0, len(small), CHUNK_OBJECTS):
            chunk = sorted(small)[start : start + CHUNK_OBJECTS]
            self._request(
                "POST", "push/objects", {"objects": [{"object_id": o, "content": local.objects[o]} for o in chunk]}
            )
        bundle = {"commits": commits, "snapshots": [local.snapshots[s] for s in snaps], "objects": []}
        return self._request("POST", "push", {"bundle": bundle, "branch": branch, "force": force})

    def put_presigned(self, url: str, raw: bytes, content_type: str | None = None) -> None:
        """PUT raw bytes with no token; urllib adds its form content type unless told otherwise."""
        content_type = content_type or self.presign_content_type
        headers = {"Content-Type": content_type} if content_type else {}
        self.calls.append("PUT presigned")
        request = urllib.request.Request(url=url, data=raw, method="PUT", headers=headers)
        with urllib.request.urlopen(request, timeout=300):
            pass

    def _apply(self, local: LocalRepo, pack: dict) -> None:
        for entry in pack.get("objects", []):
            content = entry["content"]
            if object_id(content) != entry["object_id"]:
                raise ValueError(f"Content integrity failure for {entry['object_id']}")
            local.objects[entry["object_id"]] = content
        for snap in pack.get("snapshots", []):
            local.snapshots[snap["snapshot_id"]] = snap
        for commit in pack.get("commits", []):
            local.commits[commit["commit_id"]] = commit

    def clone(self) -> LocalRepo:
        refs = self.refs(token=False)
        local = LocalRepo()
        pack = self._request("POST", "fetch", {"want": list(refs["branch_heads"].values()), "have": []}, token=False)
        self._apply(local, pack)
        local.heads = dict(refs["branch_heads"])
        return local

    def fetch(self, local: LocalRepo, branch: str = "main") -> dict:
        head = self.refs()["branch_heads"][branch]
        pack = self._request("POST", "fetch", {"want": [head], "have": list(local.commits)})
        self._apply(local, pack)
        return pack

    def pull(self, local: LocalRepo, branch: str = "main") -> dict:
        head = self.refs()["branch_heads"][branch]
        all_local = list(local.commits)
        have = all_local
        for offset in range(0, len(all_local), NEGOTIATE_DEPTH):
            batch = all_local[offset : offset + NEGOTIATE_DEPTH]
            reply = self._request("POST", "negotiate", {"want": [head], "have": batch})
            if reply.get("ready"):
                have = reply.get("ack") or batch
                break
        pack = self._request("POST", "fetch", {"want": [head], "have": have})
        self._apply(local, pack)
        local.heads[branch] = head
        return pack
