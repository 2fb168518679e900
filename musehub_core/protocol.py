"""The words of the native protocol (docs/wire.md §3), defined once for the hub and the client.

The capabilities a hub lists in ``refs`` (docs/wire.md §3.1), the headers and media
types both sides send and read, and the largest pack that may travel inside
the push call. The hub (``wire/``) and the client (``musehub_client``) import
them from here; changing a value changes the wire, and the tests pin each one.

This module imports no Django: the reference client uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

# --- capabilities (docs/wire.md §3.1): a client uses one only when the hub's ``refs`` lists it -----------

Capability = Literal["snapshot-delta", "pack-stream", "push-inline"]

SNAPSHOT_DELTA: Final = "snapshot-delta"
"""Snapshots may travel as deltas against a base (docs/wire.md §2.1): in a push, and in a fetch reply that asks."""

PACK_STREAM: Final = "pack-stream"
"""A fetch that lists it is answered with the pack itself (:data:`PACK_TYPE`), counts in :data:`PACK_COUNT_HEADERS`."""

PUSH_INLINE: Final = "push-inline"
"""``mpack/push`` takes a pack of at most :data:`INLINE_PACK_MAX_BYTES` in its body (field ``mpack``)."""

CAPABILITIES: Final[tuple[Capability, ...]] = (SNAPSHOT_DELTA, PACK_STREAM, PUSH_INLINE)
"""Every capability, in the order the hub lists them."""

# --- headers and media types ---------------------------------------------------------------------

PROTOCOL_HEADER: Final = "X-Muse-Protocol"
"""A request whose header starts with :data:`NATIVE_PROTOCOL` speaks the native protocol (prefixed ids)."""

NATIVE_PROTOCOL: Final = "mpack"

MSGPACK_TYPE: Final = "application/x-msgpack"
"""Request and reply bodies (JSON is accepted too); the client asks for it first."""

JSON_TYPE: Final = "application/json"
"""Error bodies, always (docs/wire.md §5), and the REST API."""

PACK_TYPE: Final = "application/x-mpack"
"""A streamed fetch reply (:data:`PACK_STREAM`): the pack's bytes."""

PACK_COUNT_HEADERS: Final[Mapping[str, str]] = {
    "commit_count": "MuseHub-Commit-Count",
    "snapshot_count": "MuseHub-Snapshot-Count",
    "blob_count": "MuseHub-Blob-Count",
}
"""The headers of a streamed fetch reply, by the field of the fetch answer whose count each carries."""

# --- limits --------------------------------------------------------------------------------------

INLINE_PACK_MAX_BYTES: Final = 4 * 1024 * 1024
"""The largest pack the push call may carry itself (:data:`PUSH_INLINE`); a bigger one is uploaded first."""
