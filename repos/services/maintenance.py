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

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import Any, Protocol, TypeVar

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, Sum

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

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None, /
    ) -> Any: ...


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
    """Counts and sizes of what the hub (or one repository) holds.

    ``approximate`` names the fields that are estimates (hub scope on
    PostgreSQL, for tables too big to count quickly): row counts come from the
    planner's statistics, object figures from a sample of the objects table's
    pages. Everything else is exact.
    """

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
    approximate: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Above this many rows (the planner's estimate) a hub-wide figure is estimated instead of counted.
APPROXIMATE_ABOVE = 200_000
# About how many object rows the sample behind the estimated object figures reads.
SAMPLE_ROWS = 20_000


def _repo_stats(repos: Iterable[Repo]) -> list[RepoStats]:
    """Return the stats of each of *repos* (objects per repository from its refs; the rest grouped)."""
    repos = list(repos)
    ids = [r.repo_id for r in repos]
    objects = {repo.repo_id: _repo_objects(repo) for repo in repos}  # driven from each repository's refs
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


def _unindexed():
    return ~Exists(MPackIndex.objects.filter(entity_id=OuterRef("object_id")))


def planner_rows(model) -> int | None:
    """Return the planner's estimate of *model*'s row count (PostgreSQL), or None where there is none.

    The estimate is the table's statistics scaled to its current size, as the
    planner itself uses them: no row is read. None on SQLite and for a table
    never analyzed.
    """
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", [model._meta.db_table])
        row = cursor.fetchone()
    if row is None or row[0] < 0:
        return None  # never analyzed: the planner has only the page count to go on
    return _explained_rows(model)


def _explained_rows(model) -> int:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {table}")
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def estimated_rows(model) -> int | None:
    """Return about how many rows *model*'s table holds without counting them, or None when unknown.

    PostgreSQL: the planner's estimate (from the page count alone for a table
    never analyzed). SQLite: the largest rowid, one index step (rows are only
    ever deleted by gc, so it overestimates a little at most).
    """
    if connection.vendor == "postgresql":
        return _explained_rows(model)
    if connection.vendor == "sqlite":
        table = connection.ops.quote_name(model._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(rowid) FROM {table}")
            return cursor.fetchone()[0] or 0
    return None


def _sampled_objects(estimate: int) -> dict[str, int]:
    """Return the object figures of ``hub_stats`` scaled up from a sample of the objects table's pages."""
    percent = min(100.0, 100.0 * SAMPLE_ROWS / max(estimate, 1))
    objects = connection.ops.quote_name(Object._meta.db_table)
    index = connection.ops.quote_name(MPackIndex._meta.db_table)
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(o.size_bytes), 0),"
        " COUNT(*) FILTER (WHERE o.content_cache IS NOT NULL),"
        " COALESCE(SUM(o.size_bytes) FILTER (WHERE o.content_cache IS NOT NULL), 0),"
        f" COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {index} i WHERE i.entity_id = o.object_id))"
        f" FROM {objects} o TABLESAMPLE SYSTEM (%s) REPEATABLE (0)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [percent])
        n, size, cached, cached_size, unindexed = cursor.fetchone()
    size, cached_size = int(size), int(cached_size)  # PostgreSQL sums bigints as numeric
    scale = estimate / n if n else 0.0
    return {
        "n": estimate if n else 0,
        "size": round(size * scale),
        "cached": round(cached * scale),
        "cached_size": round(cached_size * scale),
        "unindexed": round(unindexed * scale),
    }


def _count(model, stats: HubStats, name: str, exact: bool) -> int:
    """Return *model*'s row count: counted, or the planner's estimate (noted in *stats*) for a big table."""
    if not exact:
        estimate = planner_rows(model)
        if estimate is not None and estimate > APPROXIMATE_ABOVE:
            stats.approximate.append(name)
            return estimate
    return model.objects.count()


def _hub_totals(stats: HubStats, *, exact: bool) -> None:
    stats.repos = Repo.objects.count()
    stats.commits = _count(Commit, stats, "commits", exact)
    stats.snapshots = _count(Snapshot, stats, "snapshots", exact)
    stats.index_rows = _count(MPackIndex, stats, "index_rows", exact)
    estimate = None if exact else planner_rows(Object)
    if estimate is not None and estimate > APPROXIMATE_ABOVE:
        totals = _sampled_objects(estimate)
        stats.approximate += ["objects", "object_bytes", "cached_objects", "cached_bytes", "unindexed_objects"]
    else:
        totals = Object.objects.aggregate(
            n=Count("pk"),
            size=Sum("size_bytes"),
            cached=Count("pk", filter=Q(content_cache__isnull=False)),
            cached_size=Sum("size_bytes", filter=Q(content_cache__isnull=False)),
            unindexed=Count("pk", filter=_unindexed()),
        )
    stats.objects = totals["n"] or 0
    stats.object_bytes = totals["size"] or 0
    stats.cached_objects = totals["cached"] or 0
    stats.cached_bytes = totals["cached_size"] or 0
    stats.unindexed_objects = totals["unindexed"] or 0


def _repo_objects(repo: Repo) -> dict[str, int]:
    """Return the object figures of *repo*: objects, bytes, cached objects and bytes, unindexed, index rows.

    Each of the repository's objects is looked up by primary key from its ref
    rows (``OFFSET 0`` keeps PostgreSQL from flattening the lookup into a join
    it might answer by hashing the whole table), so the work grows with the
    repository, never with the hub.
    """
    t = {m.__name__: connection.ops.quote_name(m._meta.db_table) for m in (Object, ObjectRef, MPackIndex)}
    indexed = f"(SELECT COUNT(*) FROM {t['MPackIndex']} i WHERE i.entity_id = x.object_id)"
    if connection.vendor == "postgresql":
        objects = (
            f"{t['ObjectRef']} r CROSS JOIN LATERAL (SELECT x.size_bytes, x.content_cache IS NOT NULL AS cached,"
            f" {indexed} AS indexed FROM {t['Object']} x WHERE x.object_id = r.object_id OFFSET 0) o"
        )
    else:  # SQLite always drives a join from the filtered side
        objects = (
            f"{t['ObjectRef']} r JOIN (SELECT x.object_id, x.size_bytes, x.content_cache IS NOT NULL AS cached,"
            f" {indexed} AS indexed FROM {t['Object']} x) o ON o.object_id = r.object_id"
        )
    sql = (
        "SELECT COUNT(*), COALESCE(SUM(o.size_bytes), 0),"
        " COALESCE(SUM(CASE WHEN o.cached THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN o.cached THEN o.size_bytes ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN o.indexed = 0 THEN 1 ELSE 0 END), 0), COALESCE(SUM(o.indexed), 0)"
        f" FROM {objects} WHERE r.repo_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [repo.repo_id])
        row = cursor.fetchone()
    names = ("n", "size", "cached", "cached_size", "unindexed", "index_rows")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def _repo_totals(stats: HubStats, repo: Repo) -> None:
    """Count what *repo* sees, every query driven from its own ref rows."""
    totals = _repo_objects(repo)
    stats.repos = 1
    stats.commits = CommitRef.objects.filter(repo=repo).count()
    stats.snapshots = SnapshotRef.objects.filter(repo=repo).count()
    stats.objects = totals["n"]
    stats.object_bytes = totals["size"]
    stats.cached_objects = totals["cached"]
    stats.cached_bytes = totals["cached_size"]
    stats.unindexed_objects = totals["unindexed"]
    stats.index_rows = totals["index_rows"]


def hub_stats(*, repo: Repo | None = None, top: int = 10, exact: bool = False) -> HubStats:
    """Return what the hub holds, or what *repo* sees when given.

    For a repository, objects/commits/snapshots are those it has refs to, and
    mpacks are the packs pushed to or built for it; every figure is exact and
    reads only that repository's rows. For the hub on PostgreSQL, the row
    counts of tables bigger than ``APPROXIMATE_ABOVE`` rows are the planner's
    estimates and the object figures are scaled from a sample of pages
    (``approximate`` names them) unless *exact*, which counts every row.
    ``biggest_repos`` lists the *top* repositories by the bytes of the packs
    pushed to them (hub scope only).
    """
    stats = HubStats(scope=repo.full_name if repo is not None else "hub")
    packs = MPack.objects.all()
    if repo is not None:
        packs = packs.filter(repo=repo)
        _repo_totals(stats, repo)
    else:
        _hub_totals(stats, exact=exact)
    for row in packs.values("kind").annotate(n=Count("pk"), size=Sum("size_bytes")).order_by("kind"):
        stats.mpacks_by_kind[row["kind"]] = {"count": row["n"], "bytes": row["size"] or 0}
        stats.mpacks += row["n"]
        stats.mpack_bytes += row["size"] or 0
    if repo is not None:
        stats.biggest_repos = _repo_stats([repo])
    else:
        biggest = (
            MPack.objects.filter(repo__isnull=False)
            .exclude(kind="fetch")
            .values("repo")
            .annotate(size=Sum("size_bytes"))
            .order_by("-size", "repo")[:top]
        )
        order = [row["repo"] for row in biggest]
        by_id = Repo.objects.in_bulk(order)
        stats.biggest_repos = _repo_stats(by_id[rid] for rid in order if rid in by_id)
    return stats
