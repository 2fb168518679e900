"""MWP: the protocol the published muse CLI speaks (docs/wire.md §4), on the same store as the mpack protocol.

Ids travel as bare hex and are stored with their ``sha256:`` prefix; commit
dicts carry ``parent_commit_id``/``parent2_commit_id`` and optional fields that
are kept in ``Commit.metadata`` and returned unchanged. Whatever arrives is
stored exactly like a native push: every ``push/objects`` batch becomes one
mpack, presigned uploads are folded into one mpack when their ``push``
arrives, commits and snapshots go to the database only. This module is the
protocol's face (translation, limits, reply shapes); what is stored and read is
the domain's (``repos.services.push``, ``repos.services.uploads``,
``repos.services.fetch``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import msgpack
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from hubhttp.instruments import note_transfer, transfer
from musehub_core.errors import BadRequest, MalformedPack, ReplyTooLarge
from musehub_core.ids import blob_id, from_wire_hex, is_hex, is_id, to_wire_hex
from musehub_core.mpack import normalize_commit, normalize_snapshot
from repos.models import Repo
from repos.selectors import branch_heads
from repos.services.fetch import MAX_HAVE_IDS, MAX_IDS, check_ids, negotiate, select_fetch, total_size
from repos.services.push import pack_limits, receive_bundle, receive_objects
from repos.services.repos import validate_branch_name
from repos.services.uploads import stage_objects
from repos.storage.reader import plan_blob_reads, serve_blobs

log = logging.getLogger("musehub.mwp")

MWP_PARENT_FIELDS = ("parent_commit_id", "parent2_commit_id")
MAX_OBJECTS_PER_CALL = 10_000
# An object entry beyond its bytes: map header, "object_id" and its 64 hex, "content" and a bin32 header.
OBJECT_ENTRY_BYTES = 96
# A fetch reply is handed to the server in pieces of this size.
REPLY_CHUNK = 1024 * 1024
# A fetch reply is assembled in memory up to this size, then in a temporary file (at most MUSEHUB_MWP_MAX_REPLY_BYTES).
REPLY_SPOOL_MEMORY = 8 * 1024 * 1024


# --- translation at the protocol boundary ----------------------------------------------------


def id_in(value: object, where: str) -> str:
    """Return the stored form of an id that arrives as bare hex (or already prefixed)."""
    if is_hex(value) or is_id(value):
        return from_wire_hex(value)  # type: ignore[arg-type]
    raise MalformedPack(f"{where} must be a 64-hex id, got {value!r:.80}.")


def _map(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedPack(f"{where} must be a map.")
    return value


def commit_from_mwp(raw: object, index: int) -> dict[str, Any]:
    """Return the normalized commit of an MWP CommitDict (optional fields kept in metadata)."""
    where = f"commits[{index}]"
    data = dict(_map(raw, where))
    parents = [data.pop(field, None) for field in MWP_PARENT_FIELDS]
    if "parent_ids" in data and isinstance(data["parent_ids"], list):
        parents = data.pop("parent_ids")
    for key in ("commit_id", "snapshot_id"):
        if key in data:
            data[key] = id_in(data[key], f"{where}.{key}")
    data["parent_ids"] = [id_in(p, f"{where}.parent") for p in parents if p]
    return normalize_commit(data, index, pack_limits())


def commit_to_mwp(commit: Mapping[str, Any]) -> dict[str, Any]:
    """Return the MWP CommitDict of a stored commit (optional fields exactly as they arrived)."""
    parents = [to_wire_hex(p) for p in commit["parent_ids"]]
    out: dict[str, Any] = {
        "commit_id": to_wire_hex(commit["commit_id"]),
        "parent_commit_id": parents[0] if parents else None,
        "parent2_commit_id": parents[1] if len(parents) > 1 else None,
        "snapshot_id": to_wire_hex(commit["snapshot_id"]),
        "branch": commit["branch"],
        "message": commit["message"],
        "author": commit["author"],
        "committed_at": commit["committed_at"],
    }
    return {**(commit.get("metadata") or {}), **out}


def snapshot_from_mwp(raw: object, index: int) -> dict[str, Any]:
    where = f"snapshots[{index}]"
    data = dict(_map(raw, where))
    if "snapshot_id" in data:
        data["snapshot_id"] = id_in(data["snapshot_id"], f"{where}.snapshot_id")
    manifest = _map(data.get("manifest", {}), f"{where}.manifest")
    data["manifest"] = {path: id_in(oid, f"{where}.manifest[{path!r}]") for path, oid in manifest.items()}
    return normalize_snapshot(data, index, pack_limits())


def snapshot_to_mwp(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "snapshot_id": to_wire_hex(snapshot["snapshot_id"]),
        "manifest": {path: to_wire_hex(oid) for path, oid in snapshot["manifest"].items()},
        "created_at": snapshot.get("created_at") or "",
    }


def _objects_in(objects: object, where: str) -> dict[str, bytes]:
    """Return {object_id: content} of an MWP object list, every content verified against its id."""
    if not isinstance(objects, list):
        raise BadRequest(f"{where} must be a list of {{object_id, content}} maps.")
    if len(objects) > MAX_OBJECTS_PER_CALL:
        raise BadRequest(f"{where} holds {len(objects)} objects; send at most {MAX_OBJECTS_PER_CALL} per call.")
    found: dict[str, bytes] = {}
    for i, entry in enumerate(objects):
        entry = _map(entry, f"{where}[{i}]")
        oid = id_in(entry.get("object_id"), f"{where}[{i}].object_id")
        content = entry.get("content")
        if not isinstance(content, bytes):
            raise MalformedPack(f"{where}[{i}].content must be binary.")
        if blob_id(content) != oid:
            raise MalformedPack(f"{where}[{i}]: content does not hash to its object id {to_wire_hex(oid)}.")
        found[oid] = content
    return found


def _heads_out(repo: Repo) -> dict[str, str]:
    return {name: to_wire_hex(head) for name, head in branch_heads(repo).items()}


# --- writes ------------------------------------------------------------------------------------


def parse_push_objects(body: Mapping[str, Any]) -> dict[str, bytes]:
    """Return the verified ``{object_id: content}`` of a ``push/objects`` body."""
    return _objects_in(body.get("objects"), "objects")


@transfer("push", "mwp-objects", "musehub.mwp")
def mwp_push_objects(repo: Repo, contents: Mapping[str, bytes]) -> dict[str, int]:
    """Store a batch of verified blobs for *repo* as one mpack; return ``{stored, skipped}``."""
    note_transfer(repo=repo.full_name)
    new = receive_objects(repo, contents)
    note_transfer(blobs=len(new), bytes=sum(len(contents[oid]) for oid in new))
    return {"stored": len(new), "skipped": len(contents) - len(new)}


def parse_presign(body: Mapping[str, Any]) -> list[str]:
    """Return the object ids of a ``presign`` body (only ``direction: "put"`` exists)."""
    if body.get("direction") != "put":
        raise BadRequest("direction must be 'put': fetches carry their objects inline.")
    object_ids = body.get("object_ids")
    if not isinstance(object_ids, list) or len(object_ids) > MAX_OBJECTS_PER_CALL:
        raise BadRequest(f"object_ids must be a list of at most {MAX_OBJECTS_PER_CALL} ids.")
    return [id_in(value, "object_ids") for value in object_ids]


def mwp_presign(repo: Repo, ids: Sequence[str]) -> dict[str, Any]:
    """Answer presigned PUT URLs for large blobs (or ``inline`` when presigning is switched off)."""
    if not settings.MUSEHUB_MWP_PRESIGN:
        return {"presigned": {}, "inline": [to_wire_hex(oid) for oid in ids]}
    urls = stage_objects(repo, ids)
    return {"presigned": {to_wire_hex(oid): url for oid, url in urls.items()}, "inline": []}


def detect_tip(commits: Sequence[Mapping[str, Any]], branch: str) -> str:
    """Return the bundle's tip: a commit no other bundle commit names as parent.

    ``commits[0]`` (where the CLI started its walk) wins when it is such a
    leaf, then a leaf made on *branch*, then any leaf.
    """
    parents = {p for c in commits for p in c["parent_ids"]}
    leaves = [c for c in commits if c["commit_id"] not in parents]
    if not leaves:
        raise MalformedPack("The bundle's commits have no tip (every commit is another's parent).")
    if commits[0] in leaves:
        return commits[0]["commit_id"]
    on_branch = [c for c in leaves if c["branch"] == branch]
    return (on_branch or leaves)[0]["commit_id"]


@dataclass(frozen=True)
class PushBundle:
    """A validated ``push`` body: normalized commits and snapshots, verified inline objects."""

    commits: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    inline: dict[str, bytes]
    branch: str
    force: bool


def parse_push(body: Mapping[str, Any]) -> PushBundle:
    """Return the validated bundle of a ``push`` body; raise BadRequest or MalformedPack naming the problem."""
    bundle = _map(body.get("bundle"), "bundle")
    branch = validate_branch_name(body.get("branch"))
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest("force must be true or false.")
    for key in ("commits", "snapshots"):
        if not isinstance(bundle.get(key, []), list):
            raise MalformedPack(f"bundle.{key} must be a list.")
    return PushBundle(
        commits=[commit_from_mwp(c, i) for i, c in enumerate(bundle.get("commits") or [])],
        snapshots=[snapshot_from_mwp(s, i) for i, s in enumerate(bundle.get("snapshots") or [])],
        inline=_objects_in(bundle.get("objects") or [], "bundle.objects"),
        branch=branch,
        force=force,
    )


@transfer("push", "mwp", "musehub.mwp")
def mwp_push(repo: Repo, push: PushBundle, *, pusher: AbstractBaseUser | None) -> dict[str, Any]:
    """Store an MWP bundle and move its branch to its tip; return ``{ok, message, branch_heads}``.

    Raises MalformedPack (bad ids, hashes or missing content), NonFastForward
    (the current head is not reachable from the tip, without ``force``).
    """
    commits, snapshots, inline, branch = push.commits, push.snapshots, push.inline, push.branch
    note_transfer(repo=repo.full_name, branch=branch)
    if not commits:
        return {"ok": True, "message": "Nothing to push.", "branch_heads": _heads_out(repo)}
    tip = detect_tip(commits, branch)
    stored = receive_bundle(
        repo, commits=commits, snapshots=snapshots, inline=inline, branch=branch, head=tip, force=push.force
    )
    who = pusher.get_username() if pusher is not None and pusher.is_authenticated else "-"
    note_transfer(
        user=who, head=to_wire_hex(tip), commits=len(commits), blobs=len(stored), bytes=sum(b.size for b in stored)
    )
    return {
        "ok": True,
        "message": f"Pushed {len(commits)} commit(s) to {branch}.",
        "branch_heads": _heads_out(repo),
    }


# --- reads ---------------------------------------------------------------------------------------


def _ids_in(values: object, name: str, limit: int = MAX_IDS) -> list[str]:
    if not isinstance(values, list):
        raise BadRequest(f"{name} must be a list of commit ids.")
    return check_ids([id_in(v, name) if isinstance(v, str) else v for v in values], name, limit)


class MwpReply:
    """An assembled MWP fetch reply: *size* bytes of msgpack in *spool*, sent REPLY_CHUNK at a time.

    Iterating it sends the spool from its start; Django calls :meth:`close`
    when the reply is done (or the client went away), which frees the spool.
    """

    def __init__(self, spool: IO[bytes], size: int) -> None:
        self.spool = spool
        self.size = size

    def __iter__(self) -> Iterator[bytes]:
        self.spool.seek(0)
        while chunk := self.spool.read(REPLY_CHUNK):
            yield chunk

    def close(self) -> None:
        self.spool.close()


@transfer("fetch", "mwp", "musehub.mwp")
def mwp_fetch(repo: Repo, *, want: object, have: object) -> MwpReply:
    """Return the reply holding the commits, snapshots and verified blobs a client holding *have* lacks for *want*.

    The whole reply is assembled before its first byte is sent: in memory up to
    REPLY_SPOOL_MEMORY, in a temporary file past it, never more than
    MUSEHUB_MWP_MAX_REPLY_BYTES (the CLI's own cap). The muse CLI has no way to
    tell a reply cut short from a broken connection, so storage failing at any
    point of the fetch is the usual JSON 503 (StorageUnavailable), which it
    prints as one line, never a reply that stops half way.
    Raises ReplyTooLarge when the reply would exceed that cap.
    """
    note_transfer(repo=repo.full_name)
    want_ids = _ids_in(want, "want")
    have_ids = _ids_in(have, "have", MAX_HAVE_IDS)
    if not want_ids:
        raise BadRequest("want must name at least one commit.")
    selection = select_fetch(repo, want=want_ids, have=have_ids)
    reply = {
        "commits": [commit_to_mwp(c) for c in selection.commits],
        "snapshots": [snapshot_to_mwp(s) for s in selection.snapshots],
        "branch_heads": _heads_out(repo),
    }
    # Measured, not guessed: the packed size of everything but the objects, plus each object's bytes and
    # entry (its id and keys, at most OBJECT_ENTRY_BYTES), checked before any blob is read.
    limit = settings.MUSEHUB_MWP_MAX_REPLY_BYTES
    blob_bytes = total_size(selection.blob_ids)
    size = len(msgpack.packb(reply, use_bin_type=True)) + blob_bytes + OBJECT_ENTRY_BYTES * len(selection.blob_ids)
    if size > limit:
        raise _too_large(size, limit)
    plan = plan_blob_reads(selection.blob_ids)
    note_transfer(commits=len(selection.commits), blobs=plan.count, bytes=blob_bytes)
    spool = tempfile.SpooledTemporaryFile(max_size=REPLY_SPOOL_MEMORY, prefix="musehub-mwp-")  # noqa: SIM115 (MwpReply closes it)
    try:
        packer = msgpack.Packer(use_bin_type=True)
        head = [packer.pack_map_header(len(reply) + 1)]
        for key, value in reply.items():
            head += [packer.pack(key), packer.pack(value)]
        head += [packer.pack("objects"), packer.pack_array_header(plan.count)]
        written = spool.write(b"".join(head))
        for blob in serve_blobs(plan, keep_raw=True):
            entry = packer.pack({"object_id": to_wire_hex(blob.object_id), "content": blob.raw})
            written += spool.write(entry)
            if written > limit:  # object rows that understate their size: still never past the cap
                raise _too_large(written, limit)
    except BaseException:
        spool.close()
        raise
    return MwpReply(spool, written)


def _too_large(size: int, limit: int) -> ReplyTooLarge:
    return ReplyTooLarge(
        f"This fetch is {size // 2**20} MiB, more than the {limit // 2**20} MiB a muse CLI reply may hold. Clone "
        "with the MuseHub client (musehub clone URL DIR, or python -m musehub_client), which has no such cap."
    )


def mwp_negotiate(repo: Repo, *, want: object, have: object) -> dict[str, Any]:
    """Answer which *have* ids the hub knows and whether a common base with *want* is found."""
    want_ids = _ids_in(want, "want")
    have_ids = _ids_in(have, "have")
    ack, base = negotiate(repo, want=want_ids, have=have_ids)
    return {
        "ack": [to_wire_hex(cid) for cid in ack],
        "common_base": to_wire_hex(base) if base else None,
        "ready": base is not None or not have_ids,
    }
