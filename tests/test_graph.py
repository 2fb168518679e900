"""Ancestry queries over the commit graph (repos.graph), checked against a walk done in Python."""

from __future__ import annotations

import itertools

import pytest

from musehub_core.ids import fake_id
from repos import graph
from repos.bulk import insert_ignore
from repos.models import CommitGraph
from tests.factories import History, make_repo, push_history

pytestmark = pytest.mark.django_db


class Tree:
    """A pushed history with named commits, and the same ancestry computed in Python."""

    def __init__(self) -> None:
        self.history = History()
        self.ids: dict[str, str] = {}
        self.parents: dict[str, list[str]] = {}

    def add(self, name: str, *parents: str) -> str:
        parent_ids = [self.ids[p] for p in parents]
        commit = self.history.commit({f"{name}.txt": name.encode()}, parents=parent_ids, message=name)
        self.ids[name] = commit["commit_id"]
        self.parents[commit["commit_id"]] = parent_ids
        return commit["commit_id"]

    def push(self, head: str) -> None:
        push_history(make_repo(), self.history, head=self.ids[head])

    def ancestors(self, commit_id: str) -> set[str]:
        seen, stack = set(), [commit_id]
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.parents[current])
        return seen

    def generation(self, commit_id: str) -> int:
        parents = self.parents[commit_id]
        return 1 + max(self.generation(p) for p in parents) if parents else 0

    def name(self, commit_id: str | None) -> str | None:
        return next((n for n, c in self.ids.items() if c == commit_id), None)


@pytest.fixture
def tree() -> Tree:
    """R - A - B ------- M - C        (main)
    \\         /
     F1 - F2 ----- F3        (feature, merged into main at M, then continued)
    """
    t = Tree()
    t.add("R")
    t.add("A", "R")
    t.add("B", "A")
    t.add("F1", "A")
    t.add("F2", "F1")
    t.add("M", "B", "F2")
    t.add("C", "M")
    t.add("F3", "F2")
    t.push("C")
    return t


def test_generations_count_the_longest_path_from_a_root(tree):
    gens = graph.generations(tree.ids.values())
    assert {tree.name(c): g for c, g in gens.items()} == {
        "R": 0,
        "A": 1,
        "B": 2,
        "F1": 2,
        "F2": 3,
        "M": 4,
        "C": 5,
        "F3": 4,
    }
    assert gens == {c: tree.generation(c) for c in tree.ids.values()}


def test_generations_are_the_same_when_history_arrives_over_several_pushes():
    t = Tree()
    repo = make_repo()
    for name, parents, branch in [
        ("R", (), "main"),
        ("A", ("R",), "main"),
        ("F1", ("A",), "feature"),
        ("F2", ("F1",), "feature"),
        ("B", ("A",), "main"),
        ("M", ("B", "F2"), "main"),
    ]:
        commit_id = t.add(name, *parents)
        commit = next(c for c in t.history.commits if c["commit_id"] == commit_id)
        push_history(repo, t.history, commits=[commit], branch=branch)
    gens = graph.generations(t.ids.values())
    assert {t.name(c): g for c, g in gens.items()} == {"R": 0, "A": 1, "F1": 2, "F2": 3, "B": 2, "M": 4}


def test_generations_skip_unknown_commits(tree):
    assert graph.generations([tree.ids["R"], fake_id("not pushed")]) == {tree.ids["R"]: 0}


def test_ancestors_follow_both_parents_of_a_merge(tree):
    assert {tree.name(c) for c in graph.ancestors([tree.ids["M"]])} == {"R", "A", "B", "F1", "F2", "M"}
    assert {tree.name(c) for c in graph.ancestors([tree.ids["B"]])} == {"R", "A", "B"}
    assert {tree.name(c) for c in graph.ancestors([tree.ids["B"], tree.ids["F3"]])} == {
        "R",
        "A",
        "B",
        "F1",
        "F2",
        "F3",
    }
    assert graph.ancestors([]) == set()


def test_ancestors_match_a_python_walk_for_every_commit(tree):
    for commit_id in tree.ids.values():
        assert graph.ancestors([commit_id]) == tree.ancestors(commit_id)


def test_commits_between_excludes_what_have_reaches_and_lists_parents_first(tree):
    between = graph.commits_between([tree.ids["C"]], [tree.ids["F3"]])
    assert [tree.name(c) for c in between] == ["B", "M", "C"]
    between = graph.commits_between([tree.ids["F3"]], [tree.ids["C"]])
    assert [tree.name(c) for c in between] == ["F3"]
    assert graph.commits_between([tree.ids["B"]], [tree.ids["C"]]) == []
    assert graph.commits_between([], [tree.ids["C"]]) == []


def test_commits_between_matches_a_python_walk_for_every_pair(tree):
    for want, have in itertools.product(tree.ids.values(), repeat=2):
        between = graph.commits_between([want], [have])
        assert set(between) == tree.ancestors(want) - tree.ancestors(have)
        assert len(between) == len(set(between))
        position = {c: i for i, c in enumerate(between)}
        for commit_id in between:
            for parent in tree.parents[commit_id]:
                if parent in position:
                    assert position[parent] < position[commit_id], "parents come before their children"


def test_commits_between_with_empty_have_is_every_ancestor(tree):
    between = graph.commits_between([tree.ids["C"]], [])
    assert set(between) == tree.ancestors(tree.ids["C"])
    assert between[0] == tree.ids["R"] and between[-1] == tree.ids["C"]


def test_is_ancestor_answers_both_ways(tree):
    ids = tree.ids
    assert graph.is_ancestor(ids["A"], ids["C"])
    assert not graph.is_ancestor(ids["C"], ids["A"])
    assert graph.is_ancestor(ids["F1"], ids["C"]), "through the merge's second parent"
    assert not graph.is_ancestor(ids["F3"], ids["C"])
    assert not graph.is_ancestor(ids["B"], ids["F3"])
    assert not graph.is_ancestor(ids["F3"], ids["B"])
    assert graph.is_ancestor(ids["C"], ids["C"])
    assert not graph.is_ancestor(fake_id("unknown"), ids["C"])
    assert not graph.is_ancestor(ids["R"], fake_id("unknown"))


def test_is_ancestor_answers_a_parent_without_walking_the_graph(tree):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ids = tree.ids
    with CaptureQueriesContext(connection) as queries:
        assert graph.is_ancestor(ids["B"], ids["M"]) and graph.is_ancestor(ids["F2"], ids["M"]), "either parent"
    assert len(queries) == 2 and not any("RECURSIVE" in q["sql"] for q in queries.captured_queries)
    with CaptureQueriesContext(connection) as queries:
        assert graph.is_ancestor(ids["R"], ids["M"])
    assert any("RECURSIVE" in q["sql"] for q in queries.captured_queries), "further back: one walk"


def test_is_ancestor_matches_a_python_walk_for_every_pair(tree):
    for a, b in itertools.product(tree.ids.values(), repeat=2):
        assert graph.is_ancestor(a, b) == (a in tree.ancestors(b)), (tree.name(a), tree.name(b))


def test_merge_base_of_two_branches(tree):
    ids = tree.ids
    assert graph.merge_base(ids["B"], ids["F2"]) == ids["A"]
    assert graph.merge_base(ids["F2"], ids["B"]) == ids["A"]
    assert graph.merge_base(ids["C"], ids["F3"]) == ids["F2"], "the merge made F2 common"
    assert graph.merge_base(ids["A"], ids["C"]) == ids["A"]
    assert graph.merge_base(ids["C"], ids["C"]) == ids["C"]


def test_merge_base_is_a_best_common_ancestor_for_every_pair(tree):
    for a, b in itertools.product(tree.ids.values(), repeat=2):
        common = tree.ancestors(a) & tree.ancestors(b)
        base = graph.merge_base(a, b)
        assert base in common
        assert tree.generation(base) == max(tree.generation(c) for c in common)


def test_unrelated_histories_have_no_merge_base():
    t = Tree()
    t.add("X")
    t.add("Y")
    t.push("X")
    assert graph.merge_base(t.ids["X"], t.ids["Y"]) is None
    assert graph.merge_base(t.ids["X"], fake_id("unknown")) is None


def test_merge_base_of_a_criss_cross_merge_picks_a_highest_generation_common_ancestor():
    """X - P1 - P1b - P2      P2 = merge(P1b, Q1)
        \\         \\ /
         Q1 ------ Q2        Q2 = merge(Q1, P1b)
    Both P1b and Q1 are best common ancestors; P1b has the higher generation.
    """
    t = Tree()
    t.add("X")
    t.add("P1", "X")
    t.add("P1b", "P1")
    t.add("Q1", "X")
    t.add("P2", "P1b", "Q1")
    t.add("Q2", "Q1", "P1b")
    t.push("P2")
    assert graph.merge_base(t.ids["P2"], t.ids["Q2"]) == t.ids["P1b"]
    assert graph.merge_base(t.ids["Q2"], t.ids["P2"]) == t.ids["P1b"]


def test_merge_base_of_a_symmetric_criss_cross_is_one_of_the_two_best():
    t = Tree()
    t.add("X")
    t.add("P1", "X")
    t.add("Q1", "X")
    t.add("P2", "P1", "Q1")
    t.add("Q2", "Q1", "P1")
    t.push("P2")
    base = graph.merge_base(t.ids["P2"], t.ids["Q2"])
    assert base in {t.ids["P1"], t.ids["Q1"]}
    assert graph.merge_base(t.ids["Q2"], t.ids["P2"]) == base, "the answer does not depend on argument order"


# --- a long history -------------------------------------------------------------------

LENGTH = 10_000
FORK_AT = 5
SIDE = 3


@pytest.fixture
def long_history():
    """A 10,000-commit line, with a 3-commit side branch forking at commit 5."""
    main = [fake_id(f"line-{i}") for i in range(LENGTH)]
    side = [fake_id(f"side-{i}") for i in range(SIDE)]
    snapshot = fake_id("snapshot")
    rows = [(cid, [main[i - 1]] if i else [], i, snapshot) for i, cid in enumerate(main)]
    rows += [(cid, [side[i - 1] if i else main[FORK_AT]], FORK_AT + 1 + i, snapshot) for i, cid in enumerate(side)]
    insert_ignore(CommitGraph, ["commit_id", "parent_ids", "generation", "snapshot_id"], rows)
    assert CommitGraph.objects.count() == LENGTH + SIDE
    return main, side


def test_merge_base_near_the_root_of_a_long_history(long_history):
    main, side = long_history
    assert graph.merge_base(main[-1], side[-1]) == main[FORK_AT]
    assert graph.merge_base(side[-1], main[-1]) == main[FORK_AT]


def test_commits_between_on_a_long_history(long_history):
    main, side = long_history
    assert graph.commits_between([main[-1]], [side[-1]]) == main[FORK_AT + 1 :]
    assert graph.commits_between([side[-1]], [main[-1]]) == side
    assert graph.commits_between([main[-1]], [main[-2]]) == [main[-1]]


def test_is_ancestor_on_a_long_history(long_history):
    main, side = long_history
    assert graph.is_ancestor(main[0], main[-1])
    assert not graph.is_ancestor(main[-1], main[0])
    assert graph.is_ancestor(main[FORK_AT], side[-1])
    assert not graph.is_ancestor(side[0], main[-1])
    assert not graph.is_ancestor(main[FORK_AT + 1], side[-1])
