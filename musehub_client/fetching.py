"""Fetching into a working folder: new history of its branch into ``.musehub/packs``, and where its blobs are.

What ``fetch``, ``pull`` and ``merge`` share (:mod:`musehub_client.operations`
and :mod:`musehub_client.merging` both build on it):
:func:`fetch_into` downloads what the folder lacks of its branch and records
``fetched_head``; :func:`folder_manifests` finds the manifests a delta in a
downloaded pack may be based on; :func:`gather_sources` finds blobs no pack
holds among the folder's unmodified files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from musehub_client.feedback import PhaseHook, no_phases
from musehub_client.http import EXIT_NOT_FOUND, ClientError, HubClient, capabilities_of, integrity_error
from musehub_client.packs import PackStore, download_pack, kept_manifests, remove_pack
from musehub_client.state import PACKS_DIR, STATE_DIR, State
from musehub_core.ids import blob_id, hex_of
from musehub_core.manifests import BaseLookup
from musehub_core.protocol import SNAPSHOT_DELTA


@dataclass
class FetchResult:
    remote_head: str | None  # None only while the branch has never existed (an empty clone)
    commits: int = 0  # commits downloaded
    blobs: int = 0
    size: int = 0  # bytes of the downloaded pack
    url: str = ""
    branch: str = ""
    head: str | None = None  # the folder's head (fetch does not move it)
    capabilities: frozenset[str] = frozenset()  # what the hub's /refs listed
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)


def folder_manifests(root: Path, state: State) -> BaseLookup:
    """Return the BaseLookup of a working folder: its head's manifest, the manifests kept beside its packs,
    then its packs' (opened only if needed)."""

    def lookup(snapshot_ids: list[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        if state.head is not None:
            head_snapshot = state.snapshot_id()
            if head_snapshot in snapshot_ids:
                found[head_snapshot] = state.manifest
        rest = [sid for sid in snapshot_ids if sid not in found]
        if rest:
            found.update(kept_manifests(root / STATE_DIR / PACKS_DIR, rest))
            rest = [sid for sid in rest if sid not in found]
        if rest:
            found.update(PackStore.open(root).lookup(rest))
        return found

    return lookup


def fetch_into(root: Path, state: State, client: HubClient, *, phases: PhaseHook = no_phases) -> FetchResult:
    """Download what *state* lacks of its branch into ``.musehub/packs`` and record ``fetched_head``."""
    with phases("refs"):
        refs = client.refs()
    capabilities = capabilities_of(refs)
    remote = refs["branch_heads"].get(state.branch)
    result = FetchResult(remote, url=state.url, branch=state.branch, head=state.head, capabilities=capabilities)
    if remote is None:
        if state.head is None:
            return result  # cloned empty, still empty
        raise ClientError(f"{state.url} has no branch {state.branch!r} any more", EXIT_NOT_FOUND)
    if remote in (state.head, state.fetched_head):
        with phases("state"):
            state.fetched_head = remote
            state.save(root)
        return result
    pack = download_pack(
        client,
        [remote],
        state.have(),
        root / STATE_DIR / PACKS_DIR,
        deltas=SNAPSHOT_DELTA in capabilities,
        lookup=folder_manifests(root, state),
        phases=phases,
    )
    with phases("state"):
        pack_commits = [c["commit_id"] for c in pack.contents.commits]
        if remote not in pack_commits and remote not in state.commits:
            remove_pack(pack.path)
            raise integrity_error(f"the fetch pack does not hold the branch head {remote}")
        if not pack.contents.commits and not pack.contents.blobs:
            remove_pack(pack.path)
        state.commits = [*state.commits, *pack_commits]
        state.fetched_head = remote
        state.save(root)
    result.commits, result.blobs, result.size = len(pack_commits), len(pack.contents.blobs), pack.contents.size
    return result


def gather_sources(
    root: Path, state: State, store: PackStore, needed: set[str], stage: Path
) -> tuple[dict[str, Path], set[str]]:
    """Copy blobs not in any pack but present unmodified in the tree into *stage*; return (staged, still missing)."""
    staged: dict[str, Path] = {}
    wanted = needed - set(store.blobs)
    by_oid: dict[str, list[str]] = {}
    for relative, oid in state.manifest.items():
        if oid in wanted:
            by_oid.setdefault(oid, []).append(relative)
    for oid, paths in by_oid.items():
        for relative in paths:
            path = root / relative
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                raw = path.read_bytes()
            except OSError:
                continue
            if blob_id(raw) == oid:
                stage.mkdir(parents=True, exist_ok=True)
                staged[oid] = stage / hex_of(oid)
                staged[oid].write_bytes(raw)
                break
    return staged, wanted - set(staged)
