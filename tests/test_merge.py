"""The three-way manifest merge (musehub_core.merge): clean merges and every conflict kind."""

from __future__ import annotations

import pytest

from musehub_core.errors import MergeConflict
from musehub_core.ids import fake_id
from musehub_core.manifests import diff_manifests
from musehub_core.merge import (
    BOTH_ADDED,
    BOTH_MODIFIED,
    DELETED_MODIFIED,
    FILE_DIRECTORY,
    MODIFIED_DELETED,
    merge_manifests,
    three_way,
)

A, B, C, D = (fake_id(x) for x in "abcd")


def conflicts_of(base, ours, theirs) -> list[dict[str, str]]:
    with pytest.raises(MergeConflict) as caught:
        merge_manifests(base, ours, theirs)
    return caught.value.data["conflicts"]


def test_each_side_keeps_the_paths_only_it_changed():
    base = {"a": A, "b": B, "c": C}
    ours = {"a": D, "b": B, "c": C, "ours.txt": A}
    theirs = {"a": A, "b": D, "theirs.txt": B}
    assert merge_manifests(base, ours, theirs) == {"a": D, "b": D, "ours.txt": A, "theirs.txt": B}


def test_the_same_change_on_both_sides_merges_cleanly():
    base = {"a": A, "gone": B}
    same = {"a": C, "new": D}
    assert merge_manifests(base, same, dict(same)) == same


def test_a_delete_on_one_side_of_an_unchanged_path_wins():
    base = {"a": A, "b": B}
    assert merge_manifests(base, {"a": A}, base) == {"a": A}
    assert merge_manifests(base, base, {"b": B}) == {"b": B}


def test_unrelated_histories_merge_against_an_empty_base():
    assert merge_manifests({}, {"a": A}, {"b": B}) == {"a": A, "b": B}


def test_identical_trees_merge_to_themselves():
    tree = {"x/y": A, "z": B}
    assert merge_manifests(tree, tree, tree) == tree
    assert merge_manifests({}, {}, {}) == {}


def test_changed_on_both_sides_differently_is_both_modified():
    assert conflicts_of({"a": A}, {"a": B}, {"a": C}) == [{"path": "a", "kind": BOTH_MODIFIED}]


def test_added_on_both_sides_differently_is_both_added():
    assert conflicts_of({}, {"n": A}, {"n": B}) == [{"path": "n", "kind": BOTH_ADDED}]


def test_modified_here_and_deleted_there_is_modified_deleted():
    assert conflicts_of({"a": A}, {"a": B}, {}) == [{"path": "a", "kind": MODIFIED_DELETED}]


def test_deleted_here_and_modified_there_is_deleted_modified():
    assert conflicts_of({"a": A}, {}, {"a": B}) == [{"path": "a", "kind": DELETED_MODIFIED}]


def test_a_file_on_one_side_and_a_directory_on_the_other_is_file_directory():
    assert conflicts_of({}, {"docs": A}, {"docs/readme": B}) == [{"path": "docs", "kind": FILE_DIRECTORY}]


def test_every_conflict_is_listed_sorted_by_path_and_the_message_names_them():
    base = {"m": A, "md": A, "dm": A}
    ours = {"m": B, "md": B, "new": C}
    theirs = {"m": C, "dm": B, "new": D}
    with pytest.raises(MergeConflict) as caught:
        merge_manifests(base, ours, theirs)
    assert caught.value.data["conflicts"] == [
        {"path": "dm", "kind": DELETED_MODIFIED},
        {"path": "m", "kind": BOTH_MODIFIED},
        {"path": "md", "kind": MODIFIED_DELETED},
        {"path": "new", "kind": BOTH_ADDED},
    ]
    assert caught.value.status == 409 and caught.value.code == "merge_conflict"
    assert "4 paths conflict" in caught.value.message and "m (both_modified)" in caught.value.message


def test_diff_names_added_modified_and_removed_paths():
    diff = diff_manifests({"a": A, "b": B, "c": C}, {"a": A, "b": D, "e": A})
    assert diff.as_dict() == {"added": ["e"], "modified": ["b"], "removed": ["c"]}


def test_three_way_keeps_what_merged_cleanly_beside_the_conflicts():
    base = {"same": A, "m": A, "gone": A}
    ours = {"same": A, "m": B, "gone": A, "mine": C}
    theirs = {"same": A, "m": C, "theirs": D, "docs": B}
    outcome = three_way(base, {**ours, "docs/readme": A}, theirs)
    assert outcome.merged == {"same": A, "mine": C, "theirs": D, "docs": B, "docs/readme": A}
    assert outcome.conflicts == [{"path": "docs", "kind": FILE_DIRECTORY}, {"path": "m", "kind": BOTH_MODIFIED}]
    with pytest.raises(MergeConflict) as caught:
        merge_manifests(base, {**ours, "docs/readme": A}, theirs)
    assert caught.value.data["conflicts"] == outcome.conflicts, "merge_manifests raises exactly these"
    assert "musehub merge" in caught.value.message, "the message says how to resolve"
