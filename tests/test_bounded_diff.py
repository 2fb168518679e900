"""Issue 25.1: every diff a page computes has a bounded cost, and says "too large to show" past it.

The algorithm (``musehub_core.textdiff``) is held to the shortest edit script
(an LCS computed by dynamic programming) and to difflib's hunk format; the
pages are held to the attack of the security review: a reordered 40,000-line
file and an 8,000-line one in one commit.
"""

from __future__ import annotations

import difflib
import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musehub_core import textdiff
from musehub_core.native import speedups
from musehub_core.textdiff import DiffBudget, opcodes, unified_diff
from repos import readmodel
from tests.factories import History, make_repo, make_user, push_history, uid
from web.views.browse import CRUMBS_HEAD, CRUMBS_TAIL, crumbs

lines = st.lists(st.sampled_from(["a", "b", "c", "d", ""]), max_size=25)
NATIVE_REQUIRED = os.environ.get("MUSEHUB_REQUIRE_NATIVE") == "1"


@pytest.fixture(params=["c", "python"])
def search(request, monkeypatch):
    """Each test of the search runs on the C search (musehub_core._speedups) and on its Python twin."""
    if request.param == "c" and speedups is None:
        if NATIVE_REQUIRED:
            pytest.fail("musehub_core._speedups is not built, and `make test` requires it")
        pytest.skip("musehub_core._speedups is not built (`make build` builds it)")
    if request.param == "python":
        monkeypatch.setattr(textdiff, "speedups", None)
    return request.param


def lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in reversed(a):
        previous, row = row, [0] * (len(b) + 1)
        for j in range(len(b) - 1, -1, -1):
            row[j] = previous[j + 1] + 1 if x == b[j] else max(previous[j], row[j + 1])
    return row[0]


def replay(a: list[str], b: list[str], codes) -> list[str]:
    """Apply *codes* to *a*, checking they tile both sides in order; return the result."""
    out, i, j = [], 0, 0
    for tag, i1, i2, j1, j2 in codes:
        assert (i1, j1) == (i, j)
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
        out += b[j1:j2]
        i, j = i2, j2
    assert (i, j) == (len(a), len(b))
    return out


@pytest.mark.parametrize("native", [True, False])
@settings(max_examples=300, deadline=None)
@given(a=lines, b=lines)
def test_the_edit_script_is_a_shortest_one(native, a, b):
    if native and speedups is None:
        pytest.skip("musehub_core._speedups is not built")
    saved = textdiff.speedups
    textdiff.speedups = saved if native else None  # hypothesis runs many examples in one test: no fixture here
    try:
        codes = opcodes(a, b, DiffBudget())
    finally:
        textdiff.speedups = saved
    assert replay(a, b, codes) == b
    edits = sum((i2 - i1) + (j2 - j1) for tag, i1, i2, j1, j2 in codes if tag != "equal")
    assert edits == len(a) + len(b) - 2 * lcs_length(a, b)


@settings(max_examples=200, deadline=None)
@given(lines, lines, st.integers(0, 4))
def test_hunks_are_well_formed_unified_diff(a, b, context):
    diff = unified_diff(a, b, DiffBudget(), context=context)
    # Rebuild both sides from the hunks: the headers' ranges and the lines must agree with the files.
    old_seen, new_seen = [], []
    for line in diff.lines:
        if line.startswith("@@"):
            continue
        if line[0] in " -":
            old_seen.append(line[1:])
        if line[0] in " +":
            new_seen.append(line[1:])
    assert all(line in a for line in old_seen) and all(line in b for line in new_seen)
    assert bool(diff.lines) == (a != b)


@settings(max_examples=200, deadline=None)
@given(lines, lines)
def test_the_c_and_python_searches_find_the_same_script(a, b):
    if speedups is None:
        pytest.skip("musehub_core._speedups is not built")
    in_c = opcodes(a, b, DiffBudget())
    saved, textdiff.speedups = textdiff.speedups, None
    try:
        in_python = opcodes(a, b, DiffBudget())
    finally:
        textdiff.speedups = saved
    assert in_c == in_python


def test_a_small_edit_reads_exactly_as_difflib_writes_it(search):
    before = [f"line {i}" for i in range(100)]
    after = list(before)
    after[50] = "changed"
    del after[10]
    after.insert(80, "inserted")
    assert unified_diff(before, after, DiffBudget()).lines == list(difflib.unified_diff(before, after, lineterm=""))[2:]


def test_long_output_is_cut_at_max_lines_and_says_so(search):
    diff = unified_diff([str(i) for i in range(50)], [], DiffBudget(), max_lines=10)
    assert diff.truncated and len(diff.lines) == 10


def test_a_diff_the_budget_cannot_pay_for_is_refused_and_the_budget_stays_spent(search):
    big = [f"{i:05d}" for i in range(4_000)]
    reordered = big[::2] + big[1::2]  # 4,000 edits: about 16 M units, far more than the budget below
    budget = DiffBudget(units=200_000)
    assert unified_diff(big, reordered, budget) is None
    assert budget.spent_out
    assert unified_diff(["a"], ["b"], budget) is None  # every later diff on the same budget is refused too


def test_a_length_difference_too_big_to_pay_for_is_refused_without_spending(search):
    budget = DiffBudget(units=100)
    assert unified_diff([], [str(i) for i in range(5)], budget) is not None  # one side empty: no search
    assert unified_diff(["x"], [str(i) for i in range(50)], budget) is None  # 49 edits at least: 2,401 units
    assert not budget.spent_out and unified_diff(["a", "b"], ["a", "c"], budget) is not None


def test_the_deadline_bounds_a_diff_whatever_its_units(search):
    big = [f"{i:05d}" for i in range(20_000)]
    budget = DiffBudget(units=10**12, seconds=0.05)
    started = time.process_time()
    assert unified_diff(big, big[::2] + big[1::2], budget) is None
    assert budget.spent_out
    # the deadline is checked after each edit distance: one step of it here is well under a second
    assert time.process_time() - started < 5


@pytest.mark.django_db
def test_the_reordered_files_of_the_review_make_a_commit_page_that_says_too_large(client, search):
    owner = make_user(f"eve-{uid()}")
    repo = make_repo(owner, f"diffs-{uid()}")
    big = [f"{i:05d}" for i in range(40_000)]
    small = [f"{i:05d}" for i in range(8_000)]
    text = lambda rows: ("\n".join(rows) + "\n").encode()  # noqa: E731
    history = History()
    first = history.commit({"big.txt": text(big), "small.txt": text(small), "z.txt": b"one\n"})
    second = history.commit(
        {
            "big.txt": text(big[::2] + big[1::2]),
            "small.txt": text(small[::2] + small[1::2]),
            "z.txt": b"two\n",
        },
        parents=[first["commit_id"]],
    )
    push_history(repo, history)
    url = f"/{owner.username}/{repo.slug}/commit/{second['commit_id'].removeprefix('sha256:')}"
    page = client.get(url).content.decode()
    assert page.count("Diff too large to show") == 2  # big.txt and small.txt
    assert "00001" not in page  # no line of either reordered file was diffed
    assert "-one" in page and "+two" in page  # z.txt, after both, still had budget left for its diff


def test_each_diff_gets_half_of_what_is_left_and_is_charged_what_it_spent(search):
    page = DiffBudget(units=1_000_000)
    share = page.share()
    assert share.units == 500_000
    big = [f"{i:05d}" for i in range(4_000)]
    assert unified_diff(big, big[::2] + big[1::2], share) is None  # spends its whole share
    assert 0 < page.units <= 500_000 and not page.spent_out
    assert unified_diff(["a", "b"], ["a", "c"], page.share()) is not None


def test_breadcrumbs_of_a_deep_path_are_bounded_and_link_to_their_folders():
    deep = "/".join(f"d{i}" for i in range(2_000))
    shown = crumbs(deep)
    assert len(shown) == CRUMBS_HEAD + 1 + CRUMBS_TAIL
    assert shown[0] == ("d0", "d0") and shown[CRUMBS_HEAD] == ("…", None)
    assert shown[-1] == ("d1999", deep)
    assert crumbs("a/b/c") == [("a", "a"), ("b", "a/b"), ("c", "a/b/c")]


@pytest.mark.django_db
def test_a_costly_diff_refused_once_is_refused_again_without_searching(client, search, monkeypatch):
    owner = make_user(f"eve-{uid()}")
    repo = make_repo(owner, f"again-{uid()}")
    rows = [uid(), *(f"{i:05d}" for i in range(6_000))]  # blobs of this run only: refusals are kept per process
    history = History()
    first = history.commit({"f.txt": ("\n".join(rows) + "\n").encode()})
    second = history.commit(
        {"f.txt": ("\n".join(rows[::2] + rows[1::2]) + "\n").encode()}, parents=[first["commit_id"]]
    )
    push_history(repo, history)
    url = f"/{owner.username}/{repo.slug}/commit/{second['commit_id'].removeprefix('sha256:')}"
    # A small page budget: the Python twin runs out of units before its deadline too, as C does with the default.
    monkeypatch.setattr(readmodel, "DiffBudget", lambda: DiffBudget(units=100_000, seconds=60))
    searched = []
    real = textdiff._myers
    monkeypatch.setattr(textdiff, "_myers", lambda *args: searched.append(1) or real(*args))
    assert "Diff too large to show" in client.get(url).content.decode()
    assert "Diff too large to show" in client.get(url).content.decode()
    assert len(searched) == 1  # the second view knew the answer
