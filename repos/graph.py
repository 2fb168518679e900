"""Read-side ancestry queries over the commit graph table.

Every walk is one recursive SQL query over ``musehub_commit_graph`` (commit id,
parent ids, generation); commit bodies are never loaded. Generation numbers
prune walks: an ancestor of X has a smaller generation than X, so a search for
X's ancestors that sit at or above generation g never needs to go below g.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection

from .models import CommitGraph

GRAPH = CommitGraph._meta.db_table


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
    """Return a best common ancestor of *a* and *b* (the one of highest generation), or None."""
    sql = (
        f"WITH RECURSIVE {_walk('a', 1)}, {_walk('b', 1)}"
        f" SELECT g.commit_id FROM {GRAPH} g"
        f" WHERE g.commit_id IN (SELECT commit_id FROM a) AND g.commit_id IN (SELECT commit_id FROM b)"
        f" ORDER BY g.generation DESC, g.commit_id LIMIT 1"
    )
    rows = _query(sql, [a, b])
    return rows[0][0] if rows else None
