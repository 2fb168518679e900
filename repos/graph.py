"""Read-side ancestry queries over the commit graph table.

Every walk is one recursive SQL query over ``musehub_commit_graph`` (commit id,
parent ids, generation); commit bodies are never loaded. Generation numbers
prune walks: an ancestor of X has a smaller generation than X, so a search for
X's ancestors that sit at or above generation g never needs to go below g.
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


def _expand_parents() -> str:
    """Return the FROM item that turns a graph row's JSON parent list into rows of ``p.value``."""
    if connection.vendor == "postgresql":
        return "jsonb_array_elements_text(g.parent_ids) AS p(value)"
    return "json_each(g.parent_ids) AS p"


def _walk(name: str, count: int, *, min_generation: bool = False) -> str:
    """Return a recursive CTE ``name(commit_id)`` of *count* start ids and all their ancestors.

    With *min_generation*, parents below a generation parameter are not followed.
    """
    marks = ", ".join(["%s"] * count) or "NULL"
    prune = f" JOIN {GRAPH} pg ON pg.commit_id = p.value AND pg.generation >= %s" if min_generation else ""
    return (
        f"{name}(commit_id) AS ("
        f" SELECT CAST(commit_id AS TEXT) FROM {GRAPH} WHERE commit_id IN ({marks})"
        f" UNION"
        f" SELECT p.value FROM {name} JOIN {GRAPH} g ON g.commit_id = {name}.commit_id"
        f" CROSS JOIN {_expand_parents()}{prune}"
        f")"
    )


def _query(sql: str, params: Sequence[object]) -> list[tuple]:
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
        f" SELECT g.commit_id FROM {GRAPH} g"
        f" WHERE g.commit_id IN (SELECT commit_id FROM w)"
        f" AND g.commit_id NOT IN (SELECT commit_id FROM h WHERE commit_id IS NOT NULL)"
        f" ORDER BY g.generation, g.commit_id"
    )
    return [row[0] for row in _query(sql, [*want_ids, *have_ids])]


def log_count(head: str) -> int:
    """Return how many commits the log of *head* holds (*head* and all its ancestors)."""
    sql = (
        f"WITH RECURSIVE {_walk('walk', 1)}"
        f" SELECT COUNT(*) FROM {GRAPH} g JOIN {COMMITS} c ON c.commit_id = g.commit_id"
        f" WHERE g.commit_id IN (SELECT commit_id FROM walk)"
    )
    return _query(sql, [head])[0][0]


_LOG_ORDER = "ORDER BY g.generation DESC, c.timestamp DESC, g.commit_id"


def log_page(head: str, *, offset: int, limit: int) -> list[str]:
    """Return one page of the log of *head*, newest first.

    Newest means highest generation (every commit before its parents), then
    latest timestamp; one query however deep the page.
    """
    sql = (
        f"WITH RECURSIVE {_walk('walk', 1)}"
        f" SELECT g.commit_id FROM {GRAPH} g JOIN {COMMITS} c ON c.commit_id = g.commit_id"
        f" WHERE g.commit_id IN (SELECT commit_id FROM walk) {_LOG_ORDER} LIMIT %s OFFSET %s"
    )
    return [row[0] for row in _query(sql, [head, limit, offset])]


def log_rows(head: str) -> list[tuple[str, str | None, str]]:
    """Return (commit_id, first parent or None, snapshot_id) for the whole log of *head*, newest first."""
    sql = (
        f"WITH RECURSIVE {_walk('walk', 1)}"
        f" SELECT g.commit_id, g.parent_ids, g.snapshot_id FROM {GRAPH} g JOIN {COMMITS} c ON c.commit_id = g.commit_id"
        f" WHERE g.commit_id IN (SELECT commit_id FROM walk) {_LOG_ORDER}"
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
    gens = generations([ancestor, descendant])
    if ancestor not in gens or descendant not in gens or gens[ancestor] >= gens[descendant]:
        return False
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
        f" SELECT g.commit_id FROM {GRAPH} g"
        f" WHERE g.commit_id IN (SELECT commit_id FROM a) AND g.commit_id IN (SELECT commit_id FROM b)"
        f" AND g.generation >= %s"
        f" ORDER BY g.generation DESC, g.commit_id LIMIT 1"
    )
    while True:
        floor = max(top - window, 0)
        rows = _query(sql, [a, floor, b, floor, floor])
        if rows:
            return rows[0][0]
        if floor == 0:
            return None
        window *= 8
