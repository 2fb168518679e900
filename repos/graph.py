"""Read-side ancestry queries over the commit graph table.

Every walk is one recursive SQL query over ``musehub_commit_graph`` (commit id,
parent ids, generation); commit bodies are never loaded (the log reads only
each commit's timestamp, by primary key). Generation numbers prune walks: an
ancestor of X has a smaller generation than X, so a search for X's ancestors
that sit at or above generation g never needs to go below g.

The cost of a walk is the commits it reaches, never the size of the hub: the
CTE carries the columns the query around it needs, so nothing joins the whole
graph table back in (``tests/test_scale_plans.py`` checks the plans).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from django.db import connection

from .models import Commit, CommitGraph

GRAPH = CommitGraph._meta.db_table
COMMITS = Commit._meta.db_table
# How far below the lower head the first merge-base walk looks (then 8 times further each round).
_MERGE_BASE_WINDOW = 64


def _expand_parents(table: str) -> str:
    """Return the FROM item that turns *table*'s JSON parent list into rows of ``p.value``."""
    if connection.vendor == "postgresql":
        return f"jsonb_array_elements_text({table}.parent_ids) AS p(value)"
    return f"json_each({table}.parent_ids) AS p"


def _walk(name: str, count: int, *, min_generation: bool = False, timestamps: bool = False) -> str:
    """Return a recursive CTE ``name(commit_id, generation, parent_ids, snapshot_id)`` of *count* start ids and
    all their ancestors.

    The walk carries every graph column it needs, so the query around it reads
    the CTE alone and never joins the whole graph table back in: each step is
    one primary-key lookup per parent, driven by the rows already found. On
    PostgreSQL the lookup is a ``LATERAL`` subquery with ``OFFSET 0``, which the
    planner cannot turn into a hash join: it guesses 100 parents per commit
    (the row estimate of ``jsonb_array_elements_text``), and on a hub of a few
    thousand commits would otherwise scan the whole table at every step. With
    *min_generation*, parents below a generation parameter are not followed.
    With *timestamps*, a fifth column ``ts`` holds the commit's timestamp (NULL
    when the commit row is missing), read by primary key as well.
    """
    marks = ", ".join(["%s"] * count) or "NULL"
    prune = " AND g.generation >= %s" if min_generation else ""
    cols = "g.commit_id, g.generation, g.parent_ids, g.snapshot_id"
    ts_col, ts_name = "", ""
    if timestamps:
        ts_col, ts_name = f", (SELECT c.timestamp FROM {COMMITS} c WHERE c.commit_id = g.commit_id) AS ts", ", ts"
    if connection.vendor == "postgresql":
        step = (
            f" FROM {name} w CROSS JOIN {_expand_parents('w')} CROSS JOIN LATERAL"
            f" (SELECT {cols} FROM {GRAPH} g WHERE g.commit_id = p.value{prune} OFFSET 0) g"
        )
    else:  # SQLite always drives the join from the rows found
        step = f" FROM {name} w CROSS JOIN {_expand_parents('w')} JOIN {GRAPH} g ON g.commit_id = p.value{prune}"
    return (
        f"{name}(commit_id, generation, parent_ids, snapshot_id{ts_name}) AS ("
        f" SELECT {cols}{ts_col} FROM {GRAPH} g WHERE g.commit_id IN ({marks})"
        f" UNION"
        f" SELECT {cols}{ts_col}{step}"
        f")"
    )


def _query(sql: str, params: Sequence[str | int]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def ancestors(start: Iterable[str]) -> set[str]:
    """Return *start* (those in the graph) and every commit reachable from them."""
    ids = list(dict.fromkeys(start))
    if not ids:
        return set()
    rows = _query(f"WITH RECURSIVE {_walk('walk', len(ids))} SELECT commit_id FROM walk", ids)
    return {row[0] for row in rows}


def commits_between(want: Iterable[str], have: Iterable[str]) -> list[str]:
    """Return the commits reachable from *want* but not from *have*, parents before children."""
    want_ids = list(dict.fromkeys(want))
    have_ids = list(dict.fromkeys(have))
    if not want_ids:
        return []
    sql = (
        f"WITH RECURSIVE {_walk('w', len(want_ids))}, {_walk('h', len(have_ids))}"
        f" SELECT w.commit_id FROM w"
        f" WHERE NOT EXISTS (SELECT 1 FROM h WHERE h.commit_id = w.commit_id)"
        f" ORDER BY w.generation, w.commit_id"
    )
    return [row[0] for row in _query(sql, [*want_ids, *have_ids])]


def log_count(head: str) -> int:
    """Return how many commits the log of *head* holds (*head* and all its ancestors)."""
    sql = f"WITH RECURSIVE {_walk('walk', 1, timestamps=True)} SELECT COUNT(*) FROM walk WHERE ts IS NOT NULL"
    return _query(sql, [head])[0][0]


_LOG_ORDER = "ORDER BY generation DESC, ts DESC, commit_id"


def log_page(head: str, *, offset: int, limit: int) -> list[str]:
    """Return one page of the log of *head*, newest first.

    Newest means highest generation (every commit before its parents), then
    latest timestamp; one query however deep the page.
    """
    sql = (
        f"WITH RECURSIVE {_walk('walk', 1, timestamps=True)}"
        f" SELECT commit_id FROM walk WHERE ts IS NOT NULL {_LOG_ORDER} LIMIT %s OFFSET %s"
    )
    return [row[0] for row in _query(sql, [head, limit, offset])]


def log_rows(head: str) -> list[tuple[str, str | None, str]]:
    """Return (commit_id, first parent or None, snapshot_id) for the whole log of *head*, newest first."""
    sql = (
        f"WITH RECURSIVE {_walk('walk', 1, timestamps=True)}"
        f" SELECT commit_id, parent_ids, snapshot_id FROM walk WHERE ts IS NOT NULL {_LOG_ORDER}"
    )
    out = []
    for commit_id, parents, snapshot_id in _query(sql, [head]):
        if isinstance(parents, str):  # SQLite hands JSON back as text
            parents = json.loads(parents)
        out.append((commit_id, parents[0] if parents else None, snapshot_id))
    return out


def generations(commit_ids: Iterable[str]) -> dict[str, int]:
    """Return {commit_id: generation} for those of *commit_ids* in the graph."""
    ids = list(dict.fromkeys(commit_ids))
    found: dict[str, int] = {}
    for start in range(0, len(ids), 10_000):
        chunk = ids[start : start + 10_000]
        found.update(CommitGraph.objects.filter(commit_id__in=chunk).values_list("commit_id", "generation"))
    return found


def is_ancestor(ancestor: str, descendant: str) -> bool:
    """Return True when *ancestor* is *descendant* or reachable from it."""
    if ancestor == descendant:
        return True
    rows = {
        commit_id: (generation, parents)
        for commit_id, generation, parents in CommitGraph.objects.filter(
            commit_id__in=[ancestor, descendant]
        ).values_list("commit_id", "generation", "parent_ids")
    }
    if ancestor not in rows or descendant not in rows or rows[ancestor][0] >= rows[descendant][0]:
        return False
    if ancestor in (rows[descendant][1] or ()):  # a parent: the usual fast-forward by one commit, no walk
        return True
    gens = {commit_id: row[0] for commit_id, row in rows.items()}
    sql = f"WITH RECURSIVE {_walk('walk', 1, min_generation=True)} SELECT 1 FROM walk WHERE commit_id = %s LIMIT 1"
    return bool(_query(sql, [descendant, gens[ancestor], ancestor]))


def merge_base(a: str, b: str) -> str | None:
    """Return a best common ancestor of *a* and *b* (the one of highest generation), or None.

    Both walks stop at a generation floor, first just below the lower of the two
    heads, then lower and lower: the common ancestors at or above a floor are
    exactly those reachable through commits at or above it, so the first floor
    that finds any finds the best one. A fork near the heads costs a few rows
    however long the history; a fork near the root costs one walk of it.
    """
    if a == b:
        return a if generations([a]) else None
    gens = generations([a, b])
    if a not in gens or b not in gens:
        return None
    top = min(gens[a], gens[b])
    window = _MERGE_BASE_WINDOW
    sql = (
        f"WITH RECURSIVE {_walk('a', 1, min_generation=True)}, {_walk('b', 1, min_generation=True)}"
        f" SELECT a.commit_id FROM a JOIN b ON b.commit_id = a.commit_id"
        f" ORDER BY a.generation DESC, a.commit_id LIMIT 1"
    )
    while True:
        floor = max(top - window, 0)
        rows = _query(sql, [a, floor, b, floor])
        if rows:
            return rows[0][0]
        if floor == 0:
            return None
        window *= 8
