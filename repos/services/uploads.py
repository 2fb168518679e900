"""Bytes that arrive before their push: native upload slots and MWP's staged objects.

A native pack is uploaded first: :func:`open_slot` records an upload slot
(``MPackUpload``) and hands out a signed or presigned PUT URL into
``incoming/``. The push finds the slot (:meth:`PackSource.locate`) and reads
the bytes back; once they are verified it moves them to the pack's content key
(:meth:`PackSource.start_promote`, on a storage thread while the rows are
written) and forgets the slot in the push's transaction
(:meth:`PackSource.forget`); a refused push discards both at once
(:meth:`PackSource.discard`). A small pack may come in the push call itself
(:meth:`PackSource.inline_pack`) and is stored under its key the same way.

MWP presigns PUT URLs for large objects (:func:`stage_objects`, one
``StagedObject`` row each); the push that names them reads them into its pack
(:func:`open_staged`), forgets their rows in its transaction
(:func:`forget_staged`) and deletes their bytes once it is committed
(:func:`delete_staged_bytes`).

Slots and staged objects no push came for are gc's (``repos.services.gc``).
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from musehub_core.errors import BadRequest, MalformedPack, NotFound, PackNotFound, PayloadTooLarge
from musehub_core.ids import from_wire_hex, is_id, to_wire_hex
from repos.access import User
from repos.bulk import insert_ignore
from repos.models import MPack, MPackUpload, Repo, StagedObject
from repos.storage.backend import StorageStream, get_backend
from repos.storage.layout import is_staged_object, upload_id_of

# --- upload slots (native protocol) -----------------------------------------------------------


@dataclass(frozen=True)
class UploadSlot:
    """Where to PUT a pack: a signed or presigned URL, valid for *expires_in* seconds."""

    url: str
    expires_in: int


def open_slot(repo: Repo, *, mpack_key: str, size: int, user: User | None) -> UploadSlot | None:
    """Return an upload slot for pack *mpack_key* of *size* bytes, or None when *repo* already holds that pack.

    Raises BadRequest (not a content id, not a positive size) and PayloadTooLarge
    (over MUSEHUB_MAX_PACK_BYTES).
    """
    if not is_id(mpack_key):
        raise BadRequest("mpack_key must be 'sha256:' followed by 64 lowercase hex digits.")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise BadRequest("size must be a positive integer (the pack's length in bytes).")
    if size > settings.MUSEHUB_MAX_PACK_BYTES:
        raise PayloadTooLarge(f"The pack is {size} bytes; this hub accepts at most {settings.MUSEHUB_MAX_PACK_BYTES}.")
    if MPack.objects.filter(mpack_id=mpack_key, repo=repo).exists() and get_backend().mpack_exists(mpack_key):
        return None
    ttl = settings.MUSEHUB_URL_TTL_SECONDS
    upload = MPackUpload.objects.create(
        repo=repo,
        user=user if user is not None and user.is_authenticated else None,
        mpack_key=mpack_key,
        size_bytes=size,
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl),
    )
    return UploadSlot(url=get_backend().presign_upload_put(str(upload.upload_id), ttl), expires_in=ttl)


@dataclass(frozen=True)
class ExpectedUpload:
    """What a PUT to a signed storage key must hold: bytes hashing to *content_id*, at most *max_size* of them
    (exactly *exact_size* when it is set)."""

    content_id: str
    max_size: int
    exact_size: int | None


def expected_upload(storage_key: str) -> ExpectedUpload:
    """Return what an upload to *storage_key* (a slot's staging key or a staged object's) must be.

    Raises NotFound when the key names an upload slot that no longer exists.
    """
    if is_staged_object(storage_key):
        return ExpectedUpload(from_wire_hex(storage_key.rsplit("/", 1)[-1]), settings.MUSEHUB_MAX_BLOB_BYTES, None)
    upload_id = upload_id_of(storage_key)
    upload = MPackUpload.objects.filter(upload_id=upload_id).first() if upload_id else None
    if upload is None:
        raise NotFound("This upload slot no longer exists; ask for a new upload URL.")
    return ExpectedUpload(upload.mpack_key, upload.size_bytes, upload.size_bytes)


@dataclass
class PackSource:
    """Where the bytes of a pushed key are: a staged upload, the push call's body, or a pack this repo holds."""

    upload: MPackUpload | None
    inline: bytes | None = None

    @classmethod
    def inline_pack(cls, data: bytes) -> PackSource:
        """Return the source of a pack sent in the push call itself."""
        return cls(None, inline=data)

    @classmethod
    def locate(cls, repo: Repo, mpack_key: str) -> PackSource:
        """Return where *repo*'s pack *mpack_key* was uploaded (its newest slot) or is held.

        Raises PackNotFound when this repository has neither.
        """
        upload = MPackUpload.objects.filter(repo=repo, mpack_key=mpack_key).order_by("-created_at").first()
        if upload is not None:
            return cls(upload)
        if MPack.objects.filter(mpack_id=mpack_key, repo=repo).exists():
            return cls(None)
        raise PackNotFound(f"No pack {mpack_key} was uploaded to {repo.full_name}: ask for an upload URL first.")

    def open(self, mpack_key: str) -> io.BytesIO | StorageStream | None:
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

    def forget(self, repo: Repo, mpack_key: str) -> None:
        """Drop *repo*'s slots for *mpack_key* once its push is stored (run inside the push's transaction)."""
        if self.upload is not None:
            MPackUpload.objects.filter(repo=repo, mpack_key=mpack_key).delete()

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


# --- staged objects (MWP) ---------------------------------------------------------------------


def stage_objects(repo: Repo, object_ids: Collection[str]) -> dict[str, str]:
    """Record that *repo* expects uploads of *object_ids*; return a presigned PUT URL for each, by id."""
    insert_ignore(
        StagedObject,
        ["repo", "object_id", "created_at"],
        ((repo.repo_id, oid, dt.datetime.now(dt.UTC)) for oid in object_ids),
    )
    backend = get_backend()
    return {oid: backend.presign_object_put(repo.repo_id, oid) for oid in object_ids}


def staged_among(repo: Repo, object_ids: Iterable[str]) -> list[str]:
    """Return those of *object_ids* staged for *repo* (presigned, perhaps uploaded), sorted."""
    return sorted(
        StagedObject.objects.filter(repo=repo, object_id__in=list(object_ids)).values_list("object_id", flat=True)
    )


def open_staged(repo: Repo, object_id: str) -> tuple[StorageStream, int]:
    """Return (stream, size) of the bytes uploaded for *repo*'s staged object *object_id*.

    Raises MalformedPack when nothing was uploaded, PayloadTooLarge when it is
    over MUSEHUB_MAX_BLOB_BYTES.
    """
    opened = get_backend().open_staged_object(repo.repo_id, object_id)
    if opened is None:
        raise MalformedPack(f"Object {to_wire_hex(object_id)} was presigned but never uploaded.")
    stream, size = opened
    if size > settings.MUSEHUB_MAX_BLOB_BYTES:
        stream.close()
        raise PayloadTooLarge(
            f"Object {to_wire_hex(object_id)} is {size} bytes; this hub accepts blobs of at most "
            f"{settings.MUSEHUB_MAX_BLOB_BYTES} bytes."
        )
    return opened


def forget_staged(repo: Repo, object_ids: Iterable[str]) -> list[str]:
    """Delete *repo*'s staged rows among *object_ids* and return their ids (run inside the push's transaction)."""
    staged = list(
        StagedObject.objects.filter(repo=repo, object_id__in=list(object_ids)).values_list("object_id", flat=True)
    )
    StagedObject.objects.filter(repo=repo, object_id__in=staged).delete()
    return staged


def delete_staged_bytes(repo: Repo, object_ids: Iterable[str]) -> None:
    """Delete the uploaded bytes of *repo*'s staged objects *object_ids* (once their push is committed)."""
    backend = get_backend()
    for oid in sorted(object_ids):
        backend.delete_staged_object(repo.repo_id, oid)
