"""Content ids (docs/wire.md §1): properties of the formulas, checked against an independent re-implementation."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from musehub_core import ids
from musehub_core.ids import (
    PREFIX,
    blob_id,
    compute_branch_id,
    compute_commit_id,
    compute_repo_id,
    compute_snapshot_id,
    from_wire_hex,
    hex_of,
    is_hex,
    is_id,
    snapshot_entries,
    to_wire_hex,
)
from musehub_core.manifests import Tree, apply_delta, make_delta
from musehub_core.native import speedups

hex_digests = st.binary(min_size=0, max_size=64).map(lambda b: hashlib.sha256(b).hexdigest())
content_ids = hex_digests.map(lambda h: PREFIX + h)
paths = st.text(min_size=1, max_size=40)
manifests = st.dictionaries(paths, content_ids, max_size=20)
messages = st.text(max_size=200)
timestamps = st.text(max_size=40)
parent_lists = st.lists(content_ids, max_size=4)
# Names that cannot contain the NUL separator, as slugs, branch names and ids never do.
names = st.text(alphabet=st.characters(exclude_characters="\0", exclude_categories=("Cs",)), max_size=30)


def cli_snapshot_id(manifest: dict[str, str]) -> str:
    """The Muse CLI's snapshot formula, written out independently: bare hex in, bare hex out."""
    return hashlib.sha256("\0".join(sorted(f"{path}\0{oid}" for path, oid in manifest.items())).encode()).hexdigest()


def cli_commit_id(hex_parents: list[str], hex_snapshot: str, message: str, committed_at: str) -> str:
    """The Muse CLI's commit formula: sorted parents, snapshot, message and timestamp joined by NUL."""
    return hashlib.sha256(
        "\0".join(["\0".join(sorted(hex_parents)), hex_snapshot, message, committed_at]).encode()
    ).hexdigest()


def bare(manifest: dict[str, str]) -> dict[str, str]:
    return {path: oid.removeprefix(PREFIX) for path, oid in manifest.items()}


@given(manifests, st.randoms(use_true_random=False))
def test_snapshot_id_does_not_depend_on_manifest_insertion_order(manifest, rnd):
    items = list(manifest.items())
    rnd.shuffle(items)
    assert compute_snapshot_id(dict(items)) == compute_snapshot_id(manifest)


@given(parent_lists, content_ids, messages, timestamps, st.randoms(use_true_random=False))
def test_commit_id_does_not_depend_on_parent_order(parents, snapshot_id, message, committed_at, rnd):
    shuffled = list(parents)
    rnd.shuffle(shuffled)
    assert compute_commit_id(shuffled, snapshot_id, message, committed_at) == compute_commit_id(
        parents, snapshot_id, message, committed_at
    )


@given(parent_lists, content_ids, messages, timestamps, st.data())
def test_none_parents_are_ignored(parents, snapshot_id, message, committed_at, data):
    with_nones = list(parents)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        with_nones.insert(data.draw(st.integers(min_value=0, max_value=len(with_nones))), None)
    assert compute_commit_id(with_nones, snapshot_id, message, committed_at) == compute_commit_id(
        parents, snapshot_id, message, committed_at
    )


def test_a_root_commit_with_a_none_parent_equals_one_with_no_parents():
    snapshot_id = compute_snapshot_id({})
    assert compute_commit_id([None], snapshot_id, "m", "t") == compute_commit_id([], snapshot_id, "m", "t")
    assert compute_commit_id([None, None], snapshot_id, "m", "t") == compute_commit_id([], snapshot_id, "m", "t")


@given(manifests)
def test_prefixed_and_bare_hex_manifest_ids_give_the_same_snapshot_id(manifest):
    assert compute_snapshot_id(bare(manifest)) == compute_snapshot_id(manifest)


@given(parent_lists, content_ids, messages, timestamps)
def test_prefixed_and_bare_hex_commit_inputs_give_the_same_commit_id(parents, snapshot_id, message, committed_at):
    prefixed = compute_commit_id(parents, snapshot_id, message, committed_at)
    bare_parents = [p.removeprefix(PREFIX) for p in parents]
    assert compute_commit_id(bare_parents, snapshot_id.removeprefix(PREFIX), message, committed_at) == prefixed


@given(content_ids)
def test_wire_hex_round_trips(content_id):
    wire = to_wire_hex(content_id)
    assert is_hex(wire) and not is_id(wire)
    assert wire == content_id[len(PREFIX) :]
    assert from_wire_hex(wire) == content_id
    assert from_wire_hex(content_id) == content_id, "an already-prefixed id is left alone"
    assert hex_of(from_wire_hex(wire)) == wire


@given(st.binary(max_size=4096))
def test_blob_id_is_the_sha256_of_the_raw_bytes(content):
    oid = blob_id(content)
    assert oid == "sha256:" + hashlib.sha256(content).hexdigest()
    assert is_id(oid)


def test_the_empty_blob_and_the_empty_manifest_hash_the_empty_string():
    empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert blob_id(b"") == empty
    assert compute_snapshot_id({}) == empty


@given(manifests)
def test_snapshot_id_agrees_with_the_cli_formula(manifest):
    ours = compute_snapshot_id(manifest)
    assert is_id(ours)
    assert ours == PREFIX + cli_snapshot_id(bare(manifest))


@given(st.lists(hex_digests, max_size=3), hex_digests, messages, timestamps)
def test_commit_id_agrees_with_the_cli_formula(hex_parents, hex_snapshot, message, committed_at):
    ours = compute_commit_id([PREFIX + p for p in hex_parents], PREFIX + hex_snapshot, message, committed_at)
    assert is_id(ours)
    assert ours == PREFIX + cli_commit_id(hex_parents, hex_snapshot, message, committed_at)


@given(manifests, paths, content_ids)
def test_changing_any_manifest_entry_changes_the_snapshot_id(manifest, path, oid):
    changed = {**manifest, path: oid}
    if changed != manifest:
        assert compute_snapshot_id(changed) != compute_snapshot_id(manifest)


@given(content_ids, names, names, names)
def test_repo_id_is_deterministic(owner_id, slug, domain, created_at):
    first = compute_repo_id(owner_id, slug, domain, created_at)
    assert is_id(first)
    assert compute_repo_id(owner_id, slug, domain, created_at) == first


repo_inputs = st.tuples(content_ids, names, names, names)


@given(repo_inputs, st.integers(min_value=0, max_value=3), st.data())
def test_changing_any_repo_input_changes_the_repo_id(inputs, field, data):
    replacement = data.draw(content_ids if field == 0 else names)
    other = inputs[:field] + (replacement,) + inputs[field + 1 :]
    if other != inputs:
        assert compute_repo_id(*other) != compute_repo_id(*inputs)


@given(names, names, st.data())
def test_moving_text_between_neighbouring_repo_fields_changes_the_repo_id(slug, domain, data):
    """The NUL separator keeps ('ab', 'c') and ('a', 'bc') apart."""
    joined = slug + domain
    cut = data.draw(st.integers(min_value=0, max_value=len(joined)))
    owner = blob_id(b"owner")
    if cut != len(slug):
        assert compute_repo_id(owner, joined[:cut], joined[cut:], "t") != compute_repo_id(owner, slug, domain, "t")


@given(content_ids, names)
def test_branch_id_is_deterministic(repo_id, name):
    first = compute_branch_id(repo_id, name)
    assert is_id(first)
    assert compute_branch_id(repo_id, name) == first


@given(content_ids, names, content_ids, names)
def test_distinct_branch_inputs_give_distinct_branch_ids(repo_a, name_a, repo_b, name_b):
    assert compute_branch_id(repo_a, name_a) != compute_branch_id(repo_b, name_a) or repo_a == repo_b
    assert compute_branch_id(repo_a, name_a) != compute_branch_id(repo_a, name_b) or name_a == name_b


def test_same_branch_name_in_two_repos_gets_two_ids():
    repo_a = compute_repo_id(blob_id(b"owner"), "a", "code", "2026-01-01T00:00:00+00:00")
    repo_b = compute_repo_id(blob_id(b"owner"), "b", "code", "2026-01-01T00:00:00+00:00")
    assert repo_a != repo_b
    assert compute_branch_id(repo_a, "main") != compute_branch_id(repo_b, "main")


# --- the snapshot id's bytes in C (musehub_core._speedups) ---------------------------------------------------

NATIVE_REQUIRED = os.environ.get("MUSEHUB_REQUIRE_NATIVE") == "1"
needs_speedups = pytest.mark.skipif(
    speedups is None and not NATIVE_REQUIRED, reason="musehub_core._speedups is not built (`make` builds it)"
)
# Paths of every kind the C code must order as Python does: multi-byte UTF-8, prefixes of each other,
# characters below and above '/', NUL and lone surrogates (which Python cannot encode).
any_paths = st.text(alphabet=st.sampled_from(["a", "b", "/", "-", ".", "é", "日", "😀", "\0", "\ud800"]), max_size=6)
any_ids = st.one_of(content_ids, hex_digests, st.sampled_from(["", "sha256:", "sha256", "SHA256:ab"]))


def python_payload(manifest: dict) -> bytes:
    """The bytes a snapshot id hashes, by its definition (what compute_snapshot_id does without C)."""
    return "\0".join(snapshot_entries(manifest)).encode()


@needs_speedups
def test_the_c_snapshot_bytes_are_built_where_the_makefile_says_they_must_be():
    if not NATIVE_REQUIRED:
        pytest.skip("MUSEHUB_REQUIRE_NATIVE is not set (run through `make test`)")
    assert speedups is not None


@needs_speedups
@given(st.dictionaries(any_paths, any_ids, max_size=30), st.randoms(use_true_random=False))
def test_the_c_snapshot_bytes_are_the_pythons_in_any_order(manifest, rnd):
    items = list(manifest.items())
    rnd.shuffle(items)
    for order in (manifest, dict(items), dict(sorted(items)), dict(sorted(items, reverse=True))):
        try:
            expected = python_payload(order)
        except UnicodeEncodeError:  # a lone surrogate: both ways refuse it (C may leave it to Python)
            with pytest.raises(UnicodeEncodeError):
                compute_snapshot_id(order)
            try:
                assert speedups.snapshot_payload(order) is None
            except UnicodeEncodeError:
                pass
            continue
        if any("\0" in path for path in order):
            assert speedups.snapshot_payload(order) is None, "NUL in a path: left to Python"
        else:
            assert speedups.snapshot_payload(order) == expected
        assert compute_snapshot_id(order) == ids._digest(expected)


@needs_speedups
def test_the_c_snapshot_bytes_leave_what_is_not_a_dict_of_strings_to_python():
    assert speedups.snapshot_payload({"a": 1}) is None
    assert speedups.snapshot_payload({1: "a"}) is None
    assert speedups.snapshot_payload([("a", "b")]) is None
    assert speedups.snapshot_payload({}) == b""
    with pytest.raises(AttributeError):
        compute_snapshot_id({"a": 1})  # the Python way's own error, as without C


@needs_speedups
@given(st.lists(st.tuples(st.dictionaries(paths, content_ids, max_size=8), st.lists(paths, max_size=4)), max_size=6))
def test_a_tree_kept_as_its_manifest_and_one_kept_with_its_entries_give_the_same_ids(steps):
    """Without C a tree keeps its sorted entries; with C, only its manifest. Deltas must not tell them apart."""
    fast = Tree({}, None)
    slow = Tree({}, [])
    for writes, deletes in steps:
        new = {p: o for p, o in fast.manifest.items() if p not in deletes} | writes
        delta = make_delta(fast.manifest, new)
        fast, slow = fast.apply(delta), slow.apply(delta)
        assert fast.manifest == slow.manifest == new
        assert fast.snapshot_id() == slow.snapshot_id() == PREFIX + cli_snapshot_id(bare(new))


@given(st.dictionaries(any_paths, any_ids, max_size=20), st.dictionaries(any_paths, any_ids, max_size=20), st.data())
def test_a_delta_holds_what_changed_sorted_and_rebuilds_the_new_manifest(base, other, data):
    new = {**{p: o for p, o in base.items() if data.draw(st.booleans())}, **other}
    delta = make_delta(base, new)
    assert delta.set == {p: o for p, o in new.items() if base.get(p) != o}
    assert set(delta.delete) == set(base) - set(new)
    assert apply_delta(base, delta) == new
    assert list(delta.set) == sorted(delta.set) and delta.delete == sorted(delta.delete)


class Named(str):
    """A str subclass: the C code must not read its characters as if it were a str (nor hash or compare it)."""


class Renamed(str):
    """A path that formats as another: the Python way (an f-string) hashes what __format__ gives."""

    def __format__(self, spec: str) -> str:
        return "renamed/" + str.__format__(self, spec)


@needs_speedups
@pytest.mark.parametrize(
    "manifest",
    [
        {Named("a"): "sha256:1", "b": "sha256:2"},
        {"a": "sha256:1", "b": Named("sha256:2")},
        {"b": "sha256:2", Renamed("a"): "sha256:1"},
        {"a": Renamed("sha256:1")},
    ],
)
def test_the_c_snapshot_bytes_leave_str_subclasses_to_python(manifest, monkeypatch):
    """Only a dict of exact str is walked in C (no Python code can run meanwhile); any other gets the Python id."""
    assert speedups.snapshot_payload(manifest) is None
    with_c = compute_snapshot_id(manifest)
    assert with_c == ids._digest(python_payload(manifest))
    monkeypatch.setattr(ids, "speedups", None)
    assert compute_snapshot_id(manifest) == with_c
