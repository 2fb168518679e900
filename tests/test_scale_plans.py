"""Plan guards: on a hub with many repositories, per-repository work reads that repository's rows, not whole tables.

PostgreSQL only (the plans are PostgreSQL's). Each test fills the tables with
tens of thousands of rows of other repositories, runs ANALYZE so the planner
knows their size, runs the real function under a query capture, and EXPLAINs
every statement it sent: none may sequentially scan a table that grows with the
hub.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from repos import graph, models
from repos.services import maintenance
from repos.services.maintenance import hub_stats
from tests.factories import make_repo

pytestmark = pytest.mark.django_db

CHAINS = 600  # other repositories' histories
CHAIN_LENGTH = 40
CACHED = [hashlib.sha256(str(n).encode()).digest() * 40 for n in range(16)]  # 1,280-byte blobs
OURS = 28  # the served repository's history: a walk of 28 commits, as measured in the issue


def fake_id(*parts: object) -> str:
    return "sha256:" + hashlib.sha256(repr(parts).encode()).hexdigest()


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("plans are PostgreSQL's")


def analyze(*model_classes) -> None:
    with connection.cursor() as cursor:
        for model in model_classes:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def add_chain(name: object, length: int, *, base: str | None = None) -> list[str]:
    """Insert a linear history of *length* commits (graph and commit rows), on top of *base*; return its ids."""
    ids, graph_rows, commit_rows = [], [], []
    parent, generation = base, 0
    if base is not None:
        generation = models.CommitGraph.objects.get(pk=base).generation + 1
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for n in range(length):
        commit_id = fake_id("commit", name, n)
        parents = [parent] if parent else []
        snapshot_id = fake_id("snapshot", name, n)
        graph_rows.append(
            models.CommitGraph(commit_id=commit_id, parent_ids=parents, generation=generation, snapshot_id=snapshot_id)
        )
        commit_rows.append(
            models.Commit(
                commit_id=commit_id,
                parent_ids=parents,
                snapshot_id=snapshot_id,
                timestamp=when + dt.timedelta(minutes=n),
                message=f"{name} {n}",
            )
        )
        ids.append(commit_id)
        parent, generation = commit_id, generation + 1
    models.CommitGraph.objects.bulk_create(graph_rows, batch_size=5_000)
    models.Commit.objects.bulk_create(commit_rows, batch_size=5_000)
    return ids


@pytest.fixture
def crowded_graph():
    """Our 28-commit history with a 5-commit branch off it, among 600 x 40 commits of other repositories."""
    graph_rows, commit_rows = [], []
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for chain in range(CHAINS):
        parent = None
        for n in range(CHAIN_LENGTH):
            commit_id = fake_id("other", chain, n)
            parents = [parent] if parent else []
            graph_rows.append(models.CommitGraph(commit_id=commit_id, parent_ids=parents, generation=n, snapshot_id=""))
            stamp = when + dt.timedelta(seconds=chain * CHAIN_LENGTH + n)
            commit_rows.append(models.Commit(commit_id=commit_id, parent_ids=parents, snapshot_id="", timestamp=stamp))
            parent = commit_id
    models.CommitGraph.objects.bulk_create(graph_rows, batch_size=5_000)
    models.Commit.objects.bulk_create(commit_rows, batch_size=5_000)
    ours = add_chain("ours", OURS)
    feature = add_chain("feature", 5, base=ours[20])
    analyze(models.CommitGraph, models.Commit)
    return ours, feature


def explain_all(run) -> list[tuple[str, str]]:
    """Run *run*, then return (sql, plan text) for every SELECT it sent."""
    with CaptureQueriesContext(connection) as captured:
        run()
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            cursor.execute("EXPLAIN " + sql)
            plans.append((sql, "\n".join(row[0] for row in cursor.fetchall())))
    assert plans, "the function should have queried the database"
    return plans


def assert_no_seq_scan(plans: list[tuple[str, str]], *model_classes) -> None:
    for sql, plan in plans:
        for model in model_classes:
            assert f"Seq Scan on {model._meta.db_table}" not in plan, f"{sql}\n\nscans the whole table:\n{plan}"


def test_the_crowd_is_big_enough_that_a_scan_would_show(crowded_graph):
    """Without a usable join order the planner does pick a scan: the guards below can fail."""
    plans = explain_all(lambda: list(models.CommitGraph.objects.filter(parent_ids__contains=[]).values("pk")[:5]))
    assert any("Seq Scan on musehub_commit_graph" in plan for _, plan in plans)


def test_history_walks_never_scan_the_commit_graph(crowded_graph):
    ours, feature = crowded_graph
    head = ours[-1]
    calls = {
        "log_page": lambda: graph.log_page(head, offset=0, limit=30),
        "log_count": lambda: graph.log_count(head),
        "log_rows": lambda: graph.log_rows(head),
        "commits_between": lambda: graph.commits_between([feature[-1]], [ours[-1]]),
        "ancestors": lambda: graph.ancestors([feature[-1]]),
        "merge_base": lambda: graph.merge_base(feature[-1], ours[-1]),
        "is_ancestor": lambda: graph.is_ancestor(ours[3], feature[-1]),
    }
    for name, call in calls.items():
        plans = explain_all(call)
        assert_no_seq_scan(plans, models.CommitGraph, models.Commit), name
    # ... and they still answer right in the crowd.
    assert graph.log_count(ours[-1]) == OURS
    assert graph.log_page(ours[-1], offset=0, limit=3) == list(reversed(ours))[:3]
    assert graph.commits_between([feature[-1]], [ours[-1]]) == feature
    assert graph.merge_base(feature[-1], ours[-1]) == ours[20]
    assert graph.is_ancestor(ours[3], feature[-1]) and not graph.is_ancestor(ours[25], feature[-1])


@pytest.fixture
def crowded_objects():
    """One repository's 200 objects among 20,000 objects (with refs and index rows) of other repositories."""
    others = [make_repo() for _ in range(3)]
    objects, refs, index = [], [], []
    for n in range(20_000):
        object_id = fake_id("blob", n)
        # Most small blobs carry their bytes inline (content_cache), which is what makes the real table wide.
        cache = CACHED[n % len(CACHED)] if n % 10 else None
        objects.append(models.Object(object_id=object_id, size_bytes=n, content_cache=cache))
        refs.append(models.ObjectRef(repo=others[n % 3], object_id=object_id))
        index.append(models.MPackIndex(entity_id=object_id, mpack_id=fake_id("pack", n // 100), offset=0, length=1))
    mine = make_repo()
    for n in range(200):
        object_id = fake_id("mine", n)
        objects.append(models.Object(object_id=object_id, size_bytes=n))
        refs.append(models.ObjectRef(repo=mine, object_id=object_id))
        if n % 2:
            index.append(models.MPackIndex(entity_id=object_id, mpack_id=fake_id("my pack"), offset=0, length=1))
    models.Object.objects.bulk_create(objects, batch_size=5_000)
    models.ObjectRef.objects.bulk_create(refs, batch_size=5_000)
    models.MPackIndex.objects.bulk_create(index, batch_size=5_000)
    analyze(models.Object, models.ObjectRef, models.MPackIndex)
    return mine


def test_stats_of_one_repository_read_only_its_rows(crowded_objects):
    stats = None

    def run():
        nonlocal stats
        stats = hub_stats(repo=crowded_objects)

    plans = explain_all(run)
    assert_no_seq_scan(plans, models.Object, models.ObjectRef, models.MPackIndex)
    assert stats.objects == 200 and stats.unindexed_objects == 100 and stats.index_rows == 100
    assert stats.object_bytes == sum(range(200))


def test_hub_stats_anti_join_is_not_a_hashed_subplan(crowded_objects):
    """The 'objects with no index entry' count is an anti-join: it never depends on the id list fitting work_mem."""
    plans = explain_all(lambda: hub_stats(exact=True))
    for sql, plan in plans:
        assert "NOT (hashed SubPlan" not in plan and "NOT IN" not in sql.upper(), plan


def test_hub_stats_estimates_big_tables_and_says_so(crowded_objects, monkeypatch):
    exact = hub_stats(exact=True)
    assert exact.approximate == []
    assert exact.objects == 20_200 and exact.unindexed_objects == 100
    monkeypatch.setattr(maintenance, "APPROXIMATE_ABOVE", 0)
    estimated = hub_stats()
    assert {"objects", "object_bytes", "index_rows", "unindexed_objects"} <= set(estimated.approximate)
    # After ANALYZE the planner's row counts are right; the figures scaled from a sample are close.
    assert estimated.objects == exact.objects and estimated.index_rows == exact.index_rows
    assert estimated.object_bytes == pytest.approx(exact.object_bytes, rel=0.05)
    assert estimated.cached_objects == pytest.approx(exact.cached_objects, rel=0.05)


def rows_read(sql: str, table: str) -> int:
    """Return how many rows of *table* running *sql* really read (EXPLAIN ANALYZE: rows out plus rows filtered)."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        import json

        plan = json.loads(plan)
    total = 0
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == table:
            loops = node.get("Actual Loops", 1)
            total += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return total


def test_admin_lists_and_id_search_read_a_page_not_the_table(crowded_objects, crowded_graph, client, monkeypatch):
    from django.urls import reverse

    from repos import admin as repos_admin
    from tests.factories import make_user

    monkeypatch.setattr(repos_admin, "COUNT_CAP", 1_000)
    client.force_login(make_user(is_staff=True, is_superuser=True))
    some_object = fake_id("blob", 4242)
    pages = [
        ("object", {}, "musehub_objects"),
        ("object", {"q": some_object[:16]}, "musehub_objects"),
        ("object", {"q": some_object}, "musehub_objects"),
        ("object", {"repo": crowded_objects.repo_id}, "musehub_objects"),
        ("mpackindex", {}, "musehub_mpack_index"),
        ("mpackindex", {"q": some_object[:16]}, "musehub_mpack_index"),
        ("commit", {}, "musehub_commits"),
        ("commit", {"q": crowded_graph[0][5][:18]}, "musehub_commits"),
        ("commit", {"q": "ours 5"}, "musehub_commits"),  # text: the trigram index of migration 0009
        ("commitgraph", {}, "musehub_commit_graph"),
    ]
    for name, params, table in pages:
        with CaptureQueriesContext(connection) as captured:
            reply = client.get(reverse(f"admin:repos_{name}_changelist"), params)
        assert reply.status_code == 200, (name, params)
        if params.get("q"):
            assert reply.context["cl"].result_count == 1, (name, params)
        for query in captured.captured_queries:
            if table in query["sql"] and query["sql"].lstrip().upper().startswith("SELECT"):
                read = rows_read(query["sql"], table)
                assert read <= 1_001, f"{name} {params}: {read} rows of {table} read by\n{query['sql']}"


def test_fsck_of_one_repository_reads_only_its_rows(crowded_objects):
    from repos.services.fsck import fsck

    plans = explain_all(lambda: fsck(repo=crowded_objects))
    assert_no_seq_scan(plans, models.Object, models.ObjectRef, models.MPackIndex)
