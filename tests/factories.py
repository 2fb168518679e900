"""Factories: users, repositories, and client-side history built with the real id formulas."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model

from musehub_core.ids import blob_id, compute_snapshot_id
from musehub_core.mpack import build_wire_mpack, encode_blob
from musehub_core.records import commit_record
from repos.models import Repo
from repos.services.repos import create_repo
from repos.storage.backend import get_backend
from wire.push import create_mpack_upload, wire_push_unpack_mpack

_clock = itertools.count()


def uid() -> str:
    return secrets.token_hex(6)


def make_user(username: str | None = None, *, password: str = "pw", **extra):
    User = get_user_model()
    user, _ = User.objects.get_or_create(username=username or f"user-{uid()}", defaults=extra)
    user.set_password(password)
    user.save()
    return user


def make_repo(owner: Any = "gabriel", slug: str | None = None, *, visibility: str = "public", **extra) -> Repo:
    return create_repo(owner=owner, slug=slug or f"repo-{uid()}", visibility=visibility, **extra)


def timestamp() -> str:
    """Return a distinct ISO timestamp each call (so identical trees still get distinct commits)."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return (base + dt.timedelta(seconds=next(_clock))).isoformat()


@dataclass
class History:
    """A client's view of history: commits and snapshots with real ids, and the blobs they name."""

    commits: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def commit(
        self,
        files: Mapping[str, bytes],
        *,
        parents: list[str] | None = None,
        message: str = "commit",
        branch: str = "main",
        **extra: Any,
    ) -> dict[str, Any]:
        manifest = {}
        for path, content in files.items():
            oid = blob_id(content)
            manifest[path] = oid
            self.blobs[oid] = content
        snapshot = {"snapshot_id": compute_snapshot_id(manifest), "manifest": manifest, "created_at": ""}
        record = commit_record(
            parent_ids=parents or [],
            snapshot_id=snapshot["snapshot_id"],
            branch=branch,
            message=message,
            author="gabriel",
            committed_at=timestamp(),
        )
        commit: dict[str, Any] = {**record, **extra}  # extra: optional fields, at the top level as they travel
        self.commits.append(commit)
        if snapshot["snapshot_id"] not in {s["snapshot_id"] for s in self.snapshots}:
            self.snapshots.append(snapshot)
        return commit


def build_pack(
    commits: list[dict] = (),
    snapshots: list[dict] = (),
    blobs: Mapping[str, bytes] | None = None,
    *,
    zstd: bool = False,
) -> bytes:
    entries = []
    for oid, raw in (blobs or {}).items():
        if zstd:
            content, encoding = encode_blob(raw, min_size=0, min_saving=-10)
            entries.append({"object_id": oid, "content": content, "encoding": encoding})
        else:
            entries.append({"object_id": oid, "content": raw})
    return build_wire_mpack({"commits": list(commits), "snapshots": list(snapshots), "blobs": entries})


def stage_mpack(repo: Repo, data: bytes, user=None) -> str:
    """Upload *data* for *repo* as a client would (upload slot, then PUT) and return its key."""
    key = blob_id(data)
    slot = create_mpack_upload(repo, mpack_key=key, size=len(data), user=user)
    if not slot.get("exists"):
        upload = repo.uploads.filter(mpack_key=key).latest("created_at")
        get_backend().put_upload(str(upload.upload_id), data)
    return key


def push_history(
    repo: Repo,
    history: History,
    *,
    commits: list[dict] | None = None,
    blobs: Mapping[str, bytes] | None = None,
    branch: str = "main",
    head: str | None = None,
    force: bool = False,
    zstd: bool = False,
) -> dict:
    """Push *commits* (default: all of *history*) with their snapshots and *blobs* (default: all)."""
    commits = history.commits if commits is None else commits
    snap_ids = {c["snapshot_id"] for c in commits}
    snapshots = [s for s in history.snapshots if s["snapshot_id"] in snap_ids]
    blobs = history.blobs if blobs is None else blobs
    data = build_pack(commits, snapshots, blobs, zstd=zstd)
    key = stage_mpack(repo, data)
    return wire_push_unpack_mpack(
        repo,
        key,
        "gabriel",
        branch=branch,
        head_commit_id=head if head is not None else (commits[-1]["commit_id"] if commits else ""),
        commits_count=len(commits),
        blobs_count=len(blobs),
        force=force,
    )
