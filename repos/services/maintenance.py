"""What the maintenance services share: progress reporting, scoping, limits, and the hub's statistics.

The maintenance work itself lives in focused modules, each called by one thin
``manage.py`` command: :mod:`repos.services.fsck` (check), :mod:`repos.services.gc`
(collect garbage), :mod:`repos.services.repack` (combine small packs) and
:mod:`repos.services.legacy` (move per-object blobs into packs). This module
holds :func:`hub_stats` and the pieces they all use.

Services never print. Long loops report through a *progress* factory with
tqdm's signature (``progress(total=..., desc=..., unit=...)`` returning a
context manager with ``update(n)``); the default does nothing, and the
commands pass a tqdm writing to stderr.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db.models import Count, Q, Sum

from musehub_core.mpack import PackLimits
from repos.models import (
    Branch,
    Commit,
    CommitRef,
    MPack,
    MPackIndex,
    Object,
    ObjectRef,
    Repo,
    Snapshot,
    SnapshotRef,
)

CHUNK = 10_000
T = TypeVar("T")


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def __enter__(self) -> Bar: ...

    def __exit__(self, *exc: object) -> Any: ...


class Progress(Protocol):
    """Make a progress bar: tqdm's keyword signature (``total``, ``desc``, ``unit``, ``unit_scale``)."""

    def __call__(self, *, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> Bar: ...


class _NullBar:
    def update(self, n: int = 1) -> None:
        return None

    def __enter__(self) -> _NullBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def no_progress(*, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> Bar:
    """A progress factory that shows nothing (the default for every service)."""
    return _NullBar()


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    """Yield lists of at most *size* items from *items*."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def maintenance_limits() -> PackLimits:
    """Return the limits used to read packs the hub already holds.

    Repack and migration packs may hold more blobs than one push may, so only
    the per-blob size limit of the settings applies; the rest are generous.
    """
    big = 10**9
    return PackLimits(
        max_pack_bytes=1 << 62,
        max_commits=big,
        max_snapshots=big,
        max_blobs=big,
        max_blob_bytes=max(settings.MUSEHUB_MAX_BLOB_BYTES, 1 << 31),
        max_manifest_entries=big,
        max_text_bytes=64 * 1024**2,
    )


# --- statistics -------------------------------------------------------------------------


@dataclass
class RepoStats:
    repo: str
    objects: int = 0
    object_bytes: int = 0
    commits: int = 0
    snapshots: int = 0
    branches: int = 0
    mpacks: int = 0
    mpack_bytes: int = 0


@dataclass
class HubStats:
    """Counts and sizes of what the hub (or one repository) holds."""

    scope: str
    repos: int = 0
    commits: int = 0
    snapshots: int = 0
    objects: int = 0
    object_bytes: int = 0
    cached_objects: int = 0
    cached_bytes: int = 0
    unindexed_objects: int = 0
    index_rows: int = 0
    mpacks: int = 0
    mpack_bytes: int = 0
    mpacks_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    biggest_repos: list[RepoStats] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _repo_stats(repos: Iterable[Repo]) -> list[RepoStats]:
    """Return the stats of each of *repos* (a few grouped queries for all of them together)."""
    repos = list(repos)
    ids = [r.repo_id for r in repos]
    objects = {
        row["repo"]: row
        for row in ObjectRef.objects.filter(repo_id__in=ids)
        .values("repo")
        .annotate(n=Count("object"), size=Sum("object__size_bytes"))
    }
    commits = dict(
        CommitRef.objects.filter(repo_id__in=ids).values("repo").annotate(n=Count("commit")).values_list("repo", "n")
    )
    snapshots = dict(
        SnapshotRef.objects.filter(repo_id__in=ids)
        .values("repo")
        .annotate(n=Count("snapshot"))
        .values_list("repo", "n")
    )
    branches = dict(
        Branch.objects.filter(repo_id__in=ids).values("repo").annotate(n=Count("pk")).values_list("repo", "n")
    )
    packs = {
        row["repo"]: row
        for row in MPack.objects.filter(repo_id__in=ids)
        .exclude(kind="fetch")
        .values("repo")
        .annotate(n=Count("pk"), size=Sum("size_bytes"))
    }
    out = []
    for repo in repos:
        obj = objects.get(repo.repo_id, {})
        pack = packs.get(repo.repo_id, {})
        out.append(
            RepoStats(
                repo=repo.full_name,
                objects=obj.get("n") or 0,
                object_bytes=obj.get("size") or 0,
                commits=commits.get(repo.repo_id, 0),
                snapshots=snapshots.get(repo.repo_id, 0),
                branches=branches.get(repo.repo_id, 0),
                mpacks=pack.get("n") or 0,
                mpack_bytes=pack.get("size") or 0,
            )
        )
    return out


def hub_stats(*, repo: Repo | None = None, top: int = 10) -> HubStats:
    """Return what the hub holds, or what *repo* sees when given.

    For a repository, objects/commits/snapshots are those it has refs to, and
    mpacks are the packs pushed to or built for it. ``biggest_repos`` lists the
    *top* repositories by the bytes of the blobs they see (hub scope only).
    """
    objects = Object.objects.all()
    commits = Commit.objects.all()
    snapshots = Snapshot.objects.all()
    packs = MPack.objects.all()
    index = MPackIndex.objects.all()
    if repo is not None:
        objects = objects.filter(refs__repo=repo)
        commits = commits.filter(refs__repo=repo)
        snapshots = snapshots.filter(refs__repo=repo)
        packs = packs.filter(repo=repo)
        index = index.filter(entity_id__in=ObjectRef.objects.filter(repo=repo).values("object_id"))
    totals = objects.aggregate(
        n=Count("pk"),
        size=Sum("size_bytes"),
        cached=Count("pk", filter=Q(content_cache__isnull=False)),
        cached_size=Sum("size_bytes", filter=Q(content_cache__isnull=False)),
        unindexed=Count("pk", filter=~Q(pk__in=MPackIndex.objects.values("entity_id"))),
    )
    stats = HubStats(
        scope=repo.full_name if repo is not None else "hub",
        repos=1 if repo is not None else Repo.objects.count(),
        commits=commits.count(),
        snapshots=snapshots.count(),
        objects=totals["n"] or 0,
        object_bytes=totals["size"] or 0,
        cached_objects=totals["cached"] or 0,
        cached_bytes=totals["cached_size"] or 0,
        unindexed_objects=totals["unindexed"] or 0,
        index_rows=index.count(),
    )
    for row in packs.values("kind").annotate(n=Count("pk"), size=Sum("size_bytes")).order_by("kind"):
        stats.mpacks_by_kind[row["kind"]] = {"count": row["n"], "bytes": row["size"] or 0}
        stats.mpacks += row["n"]
        stats.mpack_bytes += row["size"] or 0
    if repo is not None:
        stats.biggest_repos = _repo_stats([repo])
    else:
        biggest = (
            ObjectRef.objects.values("repo").annotate(size=Sum("object__size_bytes")).order_by("-size", "repo")[:top]
        )
        order = [row["repo"] for row in biggest]
        by_id = Repo.objects.in_bulk(order)
        stats.biggest_repos = _repo_stats(by_id[rid] for rid in order if rid in by_id)
    return stats
