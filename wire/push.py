"""Push over the mpack protocol: hand out an upload slot, then unpack the uploaded pack.

The pack travels client → object storage directly (a presigned or hub-signed
URL into ``incoming/``), or, when it is small, in the push call itself
(capability ``push-inline``). :func:`wire_push_unpack_mpack` then streams it back
once, checks it hashes to its key, indexes and verifies every blob, and hands
the rest to the domain's one push pipeline (``repos.services.push``): ids,
snapshot deltas, connectivity, then moving the pack to its content key (on a
storage thread, while the rows are written) and one transaction for rows,
refs, index entries and the branch, committed once the move is done.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest, MalformedPack, NonFastForward, PackNotFound, PayloadTooLarge
from musehub_core.ids import is_id
from musehub_core.mpack import PackContents, PackLimits, index_mpack
from repos.models import MPack, MPackKind, MPackUpload, Repo
from repos.selectors import branch_heads, repo_by_id
from repos.services.history import Added
from repos.services.push import IncomingPush, StoredBlobs, receive_push
from repos.services.repos import validate_branch_name
from repos.storage.backend import get_backend
from repos.storage.writer import StoredBlob, new_mpack_row

log = logging.getLogger("musehub.push")
# The capability: `mpack/push` takes the pack itself in its body (field `mpack`, at most INLINE_PACK_MAX_BYTES),
# so a small push is one call instead of an upload slot, a PUT and the push call.
PUSH_INLINE = "push-inline"
INLINE_PACK_MAX_BYTES = 4 * 1024 * 1024
_INLINE_BODY_SLACK = 64 * 1024  # the push call's other fields and msgpack framing


def inline_push_allowed() -> bool:
    """Return True when this hub's limits take every inline pack the capability promises (it is listed then)."""
    return (
        settings.MUSEHUB_MAX_REQUEST_BYTES >= INLINE_PACK_MAX_BYTES + _INLINE_BODY_SLACK
        and settings.MUSEHUB_MAX_PACK_BYTES >= INLINE_PACK_MAX_BYTES
    )


def pack_limits() -> PackLimits:
    """Return the pack limits configured in settings."""
    return PackLimits(
        max_pack_bytes=settings.MUSEHUB_MAX_PACK_BYTES,
        max_commits=settings.MUSEHUB_MAX_PACK_COMMITS,
        max_snapshots=settings.MUSEHUB_MAX_PACK_SNAPSHOTS,
        max_blobs=settings.MUSEHUB_MAX_PACK_BLOBS,
        max_blob_bytes=settings.MUSEHUB_MAX_BLOB_BYTES,
        max_manifest_entries=settings.MUSEHUB_MAX_MANIFEST_ENTRIES,
    )


def create_mpack_upload(repo: Repo, *, mpack_key: str, size: int, user: AbstractBaseUser | None) -> dict[str, Any]:
    """Return an upload slot for pack *mpack_key* of *size* bytes, or ``exists`` when this repo already holds it."""
    if not is_id(mpack_key):
        raise BadRequest("mpack_key must be 'sha256:' followed by 64 lowercase hex digits.")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise BadRequest("size must be a positive integer (the pack's length in bytes).")
    if size > settings.MUSEHUB_MAX_PACK_BYTES:
        raise PayloadTooLarge(f"The pack is {size} bytes; this hub accepts at most {settings.MUSEHUB_MAX_PACK_BYTES}.")
    if MPack.objects.filter(mpack_id=mpack_key, repo=repo).exists() and get_backend().mpack_exists(mpack_key):
        return {"mpack_key": mpack_key, "exists": True}
    ttl = settings.MUSEHUB_URL_TTL_SECONDS
    upload = MPackUpload.objects.create(
        repo=repo,
        user=user if user is not None and user.is_authenticated else None,
        mpack_key=mpack_key,
        size_bytes=size,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl),
    )
    url = get_backend().presign_upload_put(str(upload.upload_id), ttl)
    return {"mpack_key": mpack_key, "upload_url": url, "method": "PUT", "expires_in": ttl}


@dataclass
class _PackSource:
    """Where the bytes of a pushed key are: a staged upload, the push call's body, or a pack this repo holds."""

    upload: MPackUpload | None
    inline: bytes | None = None

    def open(self, mpack_key: str) -> IO[bytes] | None:
        """Return a stream of the pack's bytes, or None when this repo has not uploaded them.

        The content key itself is read only for a pack this repo already holds,
        or one this repo's own slot promoted (an earlier attempt that failed
        after the move): knowing a key must not be enough to read a pack.
        """
        backend = get_backend()
        if self.inline is not None:
            return io.BytesIO(self.inline)
        if self.upload is None:
            return backend.open_mpack(mpack_key)
        if self.upload.promoted:
            # Marked before the move: a worker killed in between left the bytes at the staging key.
            return backend.open_mpack(mpack_key) or backend.open_upload(str(self.upload.upload_id))
        return backend.open_upload(str(self.upload.upload_id))

    def start_promote(self, mpack_key: str) -> Future[None]:
        """Start moving this slot's verified upload to its content key; the move runs while the rows are written.

        On S3 the move is a server-side copy (about a second for 64 MiB) that
        needs no database, so it overlaps the push's inserts; the push waits for
        it before its transaction commits, so no row names a key before its bytes
        are there. Idempotent, safe to repeat after a crash.
        """
        if self.inline is not None:
            return _storage_moves().submit(_store_inline, mpack_key, self.inline)
        if self.upload is None:
            return _done()
        if not self.upload.promoted:
            # Committed on its own, before the move: a retry then knows it may read the content key.
            MPackUpload.objects.filter(pk=self.upload.pk).update(promoted=True)
            self.upload.promoted = True
        return _storage_moves().submit(get_backend().promote_upload, str(self.upload.upload_id), mpack_key)

    def discard(self) -> None:
        """Forget a refused upload at once: its staging key and its slot (a promoted pack is gc's to judge)."""
        if self.upload is None:
            return
        if not self.upload.promoted:
            get_backend().delete_upload(str(self.upload.upload_id))
        MPackUpload.objects.filter(pk=self.upload.pk).delete()


@functools.cache
def _storage_moves() -> ThreadPoolExecutor:
    """Threads that put verified packs under their content keys: an upload moved, or an inline pack written
    (storage calls only, never the database)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="musehub-promote")


def _store_inline(mpack_key: str, data: bytes) -> None:
    """Store a verified inline pack (at most 4 MiB) under its content key.

    Written even when the key exists: asking first costs a storage round trip,
    and a copy already there holds the same bytes (or damaged ones, now mended),
    and is newer for gc's grace period.
    """
    get_backend().put_mpack(mpack_key, data)


def _done() -> Future[None]:
    done: Future[None] = Future()
    done.set_result(None)
    return done


def _locate(repo: Repo, mpack_key: str) -> _PackSource:
    upload = MPackUpload.objects.filter(repo=repo, mpack_key=mpack_key).order_by("-created_at").first()
    if upload is not None:
        return _PackSource(upload)
    if MPack.objects.filter(mpack_id=mpack_key, repo=repo).exists():
        return _PackSource(None)
    raise PackNotFound(f"No pack {mpack_key} was uploaded to {repo.full_name}: ask for an upload URL first.")


def _read(repo: Repo, mpack_key: str, source: _PackSource) -> PackContents:
    stream = source.open(mpack_key)
    if stream is None:
        raise PackNotFound(f"Pack {mpack_key} is not in storage yet: PUT it to the upload URL first.")
    with stream:
        contents = index_mpack(
            stream, limits=pack_limits(), keep_content_up_to=settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES
        )
    if contents.digest != mpack_key:
        raise MalformedPack(f"The uploaded bytes hash to {contents.digest}, not to the key {mpack_key}.")
    return contents


def _check_request(branch: object, head_commit_id: object, commits_count: object, blobs_count: object) -> None:
    if head_commit_id not in ("", None) and not is_id(head_commit_id):
        raise BadRequest("head_commit_id must be a commit id or empty.")
    if head_commit_id:
        validate_branch_name(branch)
    for name, value in (("commits_count", commits_count), ("blobs_count", blobs_count)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadRequest(f"{name} must be a non-negative integer.")


def _pusher_name(pusher: AbstractBaseUser | str | None) -> dict[str, str]:
    if isinstance(pusher, str):
        return {"user": pusher}
    if pusher is not None and pusher.is_authenticated:
        return {"user": pusher.get_username()}
    return {}


def _unpack(
    repo: Repo,
    mpack_key: str,
    source: _PackSource,
    *,
    branch: str,
    head_commit_id: str,
    commits_count: int,
    blobs_count: int,
    force: bool,
) -> tuple[PackContents, Added]:
    """Read and check the pack, then hand it to the push pipeline; return what it held and what the repo gained."""
    contents = _read(repo, mpack_key, source)
    if len(contents.commits) != commits_count or len(contents.blobs) != blobs_count:
        raise MalformedPack(
            f"The pack holds {len(contents.commits)} commits and {len(contents.blobs)} blobs, "
            f"but the request declared {commits_count} and {blobs_count}."
        )
    if contents.commits and not head_commit_id:
        raise MalformedPack("head_commit_id is required when the pack holds commits.")

    def promote() -> StoredBlobs:
        moving = source.start_promote(mpack_key)
        mpack = new_mpack_row(
            mpack_key,
            kind=MPackKind.PUSH,
            size=contents.size,
            blobs=len(contents.blobs),
            commits=len(contents.commits),
            snapshots=len(contents.snapshots),
        )
        blobs = [StoredBlob(b.object_id, b.size, b.offset, b.length, b.encoding, b.content) for b in contents.blobs]
        return StoredBlobs(mpack=mpack, blobs=blobs, settle=moving.result)

    def forget_upload() -> None:
        if source.upload is not None:
            MPackUpload.objects.filter(repo=repo, mpack_key=mpack_key).delete()

    push = IncomingPush(
        commits=contents.commits,
        snapshots=contents.snapshots,
        blob_ids=[b.object_id for b in contents.blobs],
        branch=branch,
        head=head_commit_id or None,
        force=force,
    )
    return contents, receive_push(repo, push, store_blobs=promote, finish=forget_upload)


@transfer("push", "mpack", "musehub.push")
def wire_push_unpack_mpack(
    repo_id: str,
    mpack_key: str,
    pusher: AbstractBaseUser | str | None,
    *,
    branch: str,
    head_commit_id: str,
    commits_count: int,
    blobs_count: int,
    force: bool = False,
    mpack: bytes | None = None,
) -> dict[str, Any]:
    """Unpack the pack uploaded under *mpack_key* (or carried in *mpack*) into repository *repo_id*, move *branch*.

    *mpack* is the pack itself, sent in the push call (``push-inline``): it is
    verified like an upload and stored under its key only then.
    Returns ``{ok, branch, head_commit_id, branch_heads, commits_added, blobs_added}``.
    Raises PackNotFound (no such upload for this repo), PayloadTooLarge (an
    inline pack over INLINE_PACK_MAX_BYTES), MalformedPack (bad bytes,
    hashes, ids, counts or connectivity), NonFastForward (without *force*). A
    rejected push writes no rows.
    """
    repo = repo_by_id(repo_id)
    note_transfer(repo=repo.full_name, branch=branch, pack=mpack_key, **_pusher_name(pusher))
    _check_request(branch, head_commit_id, commits_count, blobs_count)
    if mpack is not None and len(mpack) > min(INLINE_PACK_MAX_BYTES, settings.MUSEHUB_MAX_PACK_BYTES):
        raise PayloadTooLarge(
            f"An inline pack may hold at most {min(INLINE_PACK_MAX_BYTES, settings.MUSEHUB_MAX_PACK_BYTES)} "
            f"bytes here; upload this one ({len(mpack)} bytes) through mpack/upload."
        )
    source = _PackSource(None, inline=mpack) if mpack is not None else _locate(repo, mpack_key)
    try:
        contents, added = _unpack(
            repo,
            mpack_key,
            source,
            branch=branch,
            head_commit_id=head_commit_id,
            commits_count=commits_count,
            blobs_count=blobs_count,
            force=force,
        )
    except (MalformedPack, NonFastForward):
        source.discard()  # a refused push leaves no upload behind
        raise
    note_transfer(head=head_commit_id, commits=added.commits, blobs=added.blobs, bytes=contents.size)
    return {
        "ok": True,
        "branch": branch,
        "head_commit_id": head_commit_id,
        "branch_heads": branch_heads(repo),
        "commits_added": added.commits,
        "blobs_added": added.blobs,
    }
