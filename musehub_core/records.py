"""The commit record both sides build and send (docs/wire.md §2): :class:`CommitDict`, and :func:`commit_record`.

Every new commit, whoever makes it (the client's push and merge, the hub's
merge proposals and server-side commits, the benchmarks, the test factories),
is built by :func:`commit_record`, which computes its id with the one formula
(:func:`musehub_core.ids.compute_commit_id`, docs/wire.md §1): no caller writes the
fields or the id by hand.

This module imports no Django: the reference client uses it too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, NotRequired, TypedDict

from musehub_core.ids import compute_commit_id


class CommitDict(TypedDict):
    """A commit as it travels in an mpack (docs/wire.md §2): the seven fields every commit has.

    ``committed_at`` is an ISO-8601 string kept verbatim (it is part of the
    id). Any other field is optional metadata: on the wire it sits at the top
    level of the dict (a TypedDict cannot name such fields); the hub's
    normalized form (:func:`musehub_core.mpack.normalize_commit`) gathers it
    under ``metadata``, which the hub's own commits carry, empty.
    """

    commit_id: str
    parent_ids: list[str]
    snapshot_id: str
    branch: str
    message: str
    author: str
    committed_at: str
    metadata: NotRequired[dict[str, Any]]


def now() -> str:
    """Return the current time in UTC as the ISO-8601 string a new commit carries."""
    return dt.datetime.now(dt.UTC).isoformat()


def commit_record(
    *,
    parent_ids: Iterable[str],
    snapshot_id: str,
    branch: str,
    message: str,
    author: str,
    committed_at: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> CommitDict:
    """Return the CommitDict of a new commit, its ``commit_id`` computed from its content (docs/wire.md §1).

    *committed_at* defaults to :func:`now`. *metadata*, when given, is the
    normalized form's ``metadata`` field; without it the record has none. The
    fields come in the order senders have always written them, so a pack's
    bytes do not depend on who built its commits.
    """
    parents = list(parent_ids)
    stamp = now() if committed_at is None else committed_at
    record: CommitDict = {
        "commit_id": compute_commit_id(parents, snapshot_id, message, stamp),
        "parent_ids": parents,
        "snapshot_id": snapshot_id,
        "branch": branch,
        "message": message,
        "author": author,
        "committed_at": stamp,
    }
    if metadata is not None:
        record["metadata"] = dict(metadata)
    return record
