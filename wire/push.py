"""Push over the mpack protocol: hand out an upload slot, then unpack the uploaded pack.

The pack travels client → object storage directly (a presigned or hub-signed
URL into ``incoming/``), or, when it is small, in the push call itself
(capability ``push-inline``). This module is the protocol's face: it checks
the request and shapes the reply; the upload slot and the push are the
domain's (``repos.services.uploads.open_slot`` and
``repos.services.push.receive_pack``: the pack streamed back once, verified,
moved to its content key while one transaction writes rows, refs, index
entries and the branch).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest, PayloadTooLarge
from musehub_core.ids import is_id
from musehub_core.protocol import INLINE_PACK_MAX_BYTES
from repos.models import Repo
from repos.selectors import branch_heads
from repos.services.push import receive_pack
from repos.services.repos import validate_branch_name
from repos.services.uploads import open_slot

# The capability PUSH_INLINE: `mpack/push` takes the pack itself in its body (field `mpack`, at most
# INLINE_PACK_MAX_BYTES), so a small push is one call instead of an upload slot, a PUT and the push call.
_INLINE_BODY_SLACK = 64 * 1024  # the push call's other fields and msgpack framing


def inline_push_allowed() -> bool:
    """Return True when this hub's limits take every inline pack the capability promises (it is listed then)."""
    return (
        settings.MUSEHUB_MAX_REQUEST_BYTES >= INLINE_PACK_MAX_BYTES + _INLINE_BODY_SLACK
        and settings.MUSEHUB_MAX_PACK_BYTES >= INLINE_PACK_MAX_BYTES
    )


def create_mpack_upload(repo: Repo, *, mpack_key: str, size: int, user: AbstractBaseUser | None) -> dict[str, Any]:
    """Return an upload slot for pack *mpack_key* of *size* bytes, or ``exists`` when this repo already holds it."""
    slot = open_slot(repo, mpack_key=mpack_key, size=size, user=user)
    if slot is None:
        return {"mpack_key": mpack_key, "exists": True}
    return {"mpack_key": mpack_key, "upload_url": slot.url, "method": "PUT", "expires_in": slot.expires_in}


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


@transfer("push", "mpack", "musehub.push")
def wire_push_unpack_mpack(
    repo: Repo,
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
    """Unpack the pack uploaded under *mpack_key* (or carried in *mpack*) into *repo*, move *branch*.

    *mpack* is the pack itself, sent in the push call (``push-inline``): it is
    verified like an upload and stored under its key only then.
    Returns ``{ok, branch, head_commit_id, branch_heads, commits_added, blobs_added}``.
    Raises PackNotFound (no such upload for this repo), PayloadTooLarge (an
    inline pack over INLINE_PACK_MAX_BYTES), MalformedPack (bad bytes,
    hashes, ids, counts or connectivity), NonFastForward (without *force*). A
    rejected push writes no rows.
    """
    note_transfer(repo=repo.full_name, branch=branch, pack=mpack_key, **_pusher_name(pusher))
    _check_request(branch, head_commit_id, commits_count, blobs_count)
    if mpack is not None and len(mpack) > min(INLINE_PACK_MAX_BYTES, settings.MUSEHUB_MAX_PACK_BYTES):
        raise PayloadTooLarge(
            f"An inline pack may hold at most {min(INLINE_PACK_MAX_BYTES, settings.MUSEHUB_MAX_PACK_BYTES)} "
            f"bytes here; upload this one ({len(mpack)} bytes) through mpack/upload."
        )
    received = receive_pack(
        repo,
        mpack_key,
        inline=mpack,
        branch=branch,
        head_commit_id=head_commit_id,
        commits_count=commits_count,
        blobs_count=blobs_count,
        force=force,
    )
    note_transfer(head=head_commit_id, commits=received.added.commits, blobs=received.added.blobs, bytes=received.size)
    return {
        "ok": True,
        "branch": branch,
        "head_commit_id": head_commit_id,
        "branch_heads": branch_heads(repo),
        "commits_added": received.added.commits,
        "blobs_added": received.added.blobs,
    }
