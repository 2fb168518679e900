"""Line diffs whose cost is bounded: Myers' O(ND) algorithm spending at most a given budget of work.

``difflib`` is quadratic (or worse) in the lines it compares, so one crafted
commit could keep a web page busy for minutes. Here every diff draws on a
:class:`DiffBudget` (work units and a deadline, usually one per page): the
common prefix and suffix are skipped in linear time, then Myers' greedy
search spends one unit per diagonal it visits and per line it matches. A
diff that would need more than is left answers ``None``, "too large to
show", as GitHub and Gitea do. A page gives each file :meth:`DiffBudget.share`, half of
what is left, so one costly file leaves the files after it enough for theirs.

The search stores one frontier per edit distance ``d``, so its memory is
bounded by the same budget: about ``D²/2`` ints for a diff of ``D`` edits (the
C search keeps the ``d + 1`` diagonals of d's parity; the Python twin, which
the deadline stops sooner, ``2d + 1``). The C search (``_speedups.myers``)
runs without the GIL, so other requests of the same worker go on meanwhile.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from musehub_core.native import speedups

# One unit ≈ one diagonal visited or one line matched: about 13 ns in C (musehub_core._speedups), 0.5 µs in
# the Python twin. A page's diffs then cost at most ~0.05 s in C, and the deadline bounds the Python way.
# A diff of D changed lines needs about D²/2 units: the first file of a page (half the budget) shows up to
# ~2,000 changed lines; 300 edits scattered over a 5,000-line file take about 0.2 M units.
PAGE_DIFF_UNITS = 4_000_000
PAGE_DIFF_SECONDS = 0.75

Opcode = tuple[str, int, int, int, int]  # difflib's (tag, i1, i2, j1, j2): "equal", "replace", "delete", "insert"


@dataclass
class DiffBudget:
    """The work left to the diffs of one page: units of search, and a wall-clock deadline."""

    units: int = PAGE_DIFF_UNITS
    seconds: float = PAGE_DIFF_SECONDS
    deadline: float = field(init=False)
    spent_out: bool = field(default=False, init=False)
    parent: DiffBudget | None = field(default=None, init=False, repr=False)
    granted: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.seconds

    def charge(self, units: int) -> bool:
        """Spend *units*; return False (and stay spent out) when the budget or the deadline is passed."""
        self.units -= units
        if self.units < 0 or time.monotonic() > self.deadline:
            self.spent_out = True
        return not self.spent_out

    def share(self) -> DiffBudget:
        """Return half of what is left, for one diff: a costly file cannot starve the files after it."""
        child = DiffBudget(units=max(self.units, 0) // 2, seconds=max(self.deadline - time.monotonic(), 0) / 2)
        child.parent, child.granted = self, child.units
        child.spent_out = self.spent_out
        return child

    def settle(self) -> None:
        """Charge the budget this one was shared from with the units it spent."""
        if self.parent is not None:
            self.parent.units -= self.granted - max(self.units, 0)
            self.parent = None


@dataclass
class UnifiedDiff:
    """A unified diff's lines (hunk headers ``@@ …``, then `` ``/``-``/``+`` lines), without the ---/+++ header."""

    lines: list[str]
    truncated: bool  # more lines than *max_lines*: the rest was not formatted


def unified_diff(
    before: Sequence[str], after: Sequence[str], budget: DiffBudget, *, context: int = 3, max_lines: int = 2_000
) -> UnifiedDiff | None:
    """Return the unified diff of *before* → *after* (lists of lines), or None when *budget* cannot pay for it."""
    codes = opcodes(before, after, budget)
    budget.settle()
    if codes is None:
        return None
    lines: list[str] = []
    for group in grouped(codes, context):
        first, last = group[0], group[-1]
        lines.append(f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [" " + line for line in before[i1:i2]]
                continue
            lines += ["-" + line for line in before[i1:i2]]
            lines += ["+" + line for line in after[j1:j2]]
        if len(lines) > max_lines:
            return UnifiedDiff(lines[:max_lines], truncated=True)
    return UnifiedDiff(lines, truncated=False)


def opcodes(before: Sequence[str], after: Sequence[str], budget: DiffBudget) -> list[Opcode] | None:
    """Return difflib-style opcodes turning *before* into *after* with fewest edits, or None past *budget*."""
    n, m = len(before), len(after)
    if budget.spent_out or not budget.charge(n + m):
        return None
    head = 0
    while head < n and head < m and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < n - head and tail < m - head and before[n - 1 - tail] == after[m - 1 - tail]:
        tail += 1
    middle = _myers(list(before[head : n - tail]), list(after[head : m - tail]), budget)
    if middle is None:
        return None
    codes: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    codes += [(tag, i1 + head, i2 + head, j1 + head, j2 + head) for tag, i1, i2, j1, j2 in middle]
    if tail:
        codes.append(("equal", n - tail, n, m - tail, m))
    return codes


def _myers(old: list[str], new: list[str], budget: DiffBudget) -> list[Opcode] | None:
    """Myers' greedy shortest edit script of *old* → *new*, as opcodes; None when *budget* runs out first."""
    n, m = len(old), len(new)
    if not n or not m:
        return [("delete", 0, n, 0, 0)] if n else [("insert", 0, 0, 0, m)] if m else []
    if (n - m) ** 2 // 2 > budget.units:  # at least |n - m| edits, so about (n - m)²/2 units: refuse before spending
        return None
    if speedups is not None:  # the same search in C, without the GIL
        seconds = budget.deadline - time.monotonic()
        codes, spent = speedups.myers(old, new, max(budget.units, 0), seconds)
        budget.charge(spent)
        return codes
    offset = n + m + 1
    frontier = array("l", [0]) * (2 * offset + 1)  # furthest x reached on each diagonal k = x - y
    trace: list[array] = []
    numbers: dict[str, int] = {}  # each line as an int: the loops below compare ints
    a = [numbers.setdefault(line, len(numbers)) for line in old]
    b = [numbers.setdefault(line, len(numbers)) for line in new]
    for d in range(n + m + 1):
        steps = d + 1
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and frontier[offset + k - 1] < frontier[offset + k + 1]):
                x = frontier[offset + k + 1]  # a step down: an insertion
            else:
                x = frontier[offset + k - 1] + 1  # a step right: a deletion
            y = x - k
            start = x
            while x < n and y < m and a[x] == b[y]:
                x += 1
                y += 1
            steps += x - start
            frontier[offset + k] = x
            if x >= n and y >= m:
                trace.append(frontier[offset - d : offset + d + 1])
                return _opcodes_of_trace(trace, n, m)
        trace.append(frontier[offset - d : offset + d + 1])
        if not budget.charge(steps):
            return None
    return None  # unreachable: d = n + m always reaches the end


def _opcodes_of_trace(trace: list[array], n: int, m: int) -> list[Opcode]:
    """Walk the stored frontiers back from (n, m) to (0, 0) and return the path as opcodes."""
    steps: list[tuple[str, int, int]] = []  # (tag, x, y) at the start of each unit step, newest first
    x, y = n, m
    for d in range(len(trace) - 1, 0, -1):
        previous = trace[d - 1]  # frontier after d - 1 edits, indexed k + (d - 1)
        k = x - y
        down = k == -d or (k != d and previous[k - 1 + d - 1] < previous[k + 1 + d - 1])
        prev_k = k + 1 if down else k - 1
        prev_x = previous[prev_k + d - 1]
        prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:  # the snake after the edit
            x, y = x - 1, y - 1
            steps.append(("equal", x, y))
        x, y = prev_x, prev_y
        steps.append(("insert", x, y) if down else ("delete", x, y))
    while x > 0 and y > 0:
        x, y = x - 1, y - 1
        steps.append(("equal", x, y))
    codes: list[Opcode] = []
    for tag, x, y in reversed(steps):
        kind = "equal" if tag == "equal" else "change"
        di, dj = (1, 1) if tag == "equal" else (1, 0) if tag == "delete" else (0, 1)
        if codes and (codes[-1][0] == "equal") == (kind == "equal"):
            t, i1, _, j1, _ = codes[-1]
            codes[-1] = (t, i1, x + di, j1, y + dj)
        else:
            codes.append(("equal" if kind == "equal" else "replace", x, x + di, y, y + dj))
    return [_named(code) for code in codes]


def _named(code: Opcode) -> Opcode:
    tag, i1, i2, j1, j2 = code
    if tag == "replace" and i1 == i2:
        return ("insert", i1, i2, j1, j2)
    if tag == "replace" and j1 == j2:
        return ("delete", i1, i2, j1, j2)
    return code


def grouped(codes: list[Opcode], context: int) -> Iterator[list[Opcode]]:
    """Group *codes* into hunks with up to *context* lines around each change (difflib's grouping)."""
    codes = list(codes) or [("equal", 0, 1, 0, 1)]
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = (tag, max(i1, i2 - context), i2, max(j1, j2 - context), j2)
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = (tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context))
    group: list[Opcode] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * context:
            group.append((tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - context), max(j1, j2 - context)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group


def _range(start: int, stop: int) -> str:
    """A unified diff's range: ``start,length``, 1-based, as difflib writes it."""
    beginning, length = start + 1, stop - start
    if length == 1:
        return str(beginning)
    if not length:
        beginning -= 1
    return f"{beginning},{length}"
