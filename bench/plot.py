"""The MuseHub/git ratio of each workload over the dated benchmark runs: ``bench/results/ratios.png``.

``make bench`` draws it after its run; alone::

    .venv/bin/python -m bench.plot [--setup full|quick|embedded] [--results DIR] [--out FILE]

A results file of ``python -m bench.run`` (``bench.report.document``) starts with
``# MuseHub benchmark (<set-up>)``, has a line ``- Date: YYYY-MM-DD HH:MM UTC; code at commit X``
and a phase table whose fifth column is the ratio MuseHub/git of the run's medians. The plot takes
that column as recorded: one line per workload, one point per run, runs in date order. Only runs
of one set-up are drawn (default ``full``: gunicorn on PostgreSQL and moto's S3, W1-W4 on 25,000
files), since quick and embedded runs measure other sizes and set-ups. Skipped, each with its
reason printed: files of other set-ups, baseline files (older code re-run later for a "before"
column, so their date is not their code's), and files that are not bench.run results or whose
table cannot be read (core_25k, scale, notes).

Parsing needs no matplotlib; drawing imports it (Agg backend, no display needed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
OUT = RESULTS / "ratios.png"

_TITLE = re.compile(r"^# MuseHub benchmark \((?P<setup>[^)]*)\)", re.M)
_DATE = re.compile(
    r"^- Date: (?P<date>\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC(?:; code at commit (?P<commit>[0-9a-f]+))?", re.M
)
_HEADER = ("workload", "phase", "MuseHub median s", "git median s", "ratio MuseHub/git")
_W5 = re.compile(r"W5 history (?P<files>[\d,]+) files x (?P<commits>[\d,]+) commits")

# (label, workload, phase pattern): the phases compared with git, under one name across the runs' wordings.
SERIES = (
    ("W1 push: upload + unpack (git push)", "W1 push", r"upload \+ unpack.*"),
    ("W1 push: total", "W1 push", r"total"),
    ("W1 client pack (git add + commit)", "W1 push", r"client pack.*"),
    ("W2 clone", "W2 clone", r"total"),
    ("W3 push of 10 files", "W3 incremental", r"push total.*"),
    ("W3 fetch of 10 files", "W3 incremental", r"fetch total.*"),
    ("W4 small pushes", "W4 many packs", r"\d+ small pushes"),
    ("W4 clone before repack", "W4 many packs", r"clone total before repack"),
    ("W4 musehub_repack (git repack -a -d)", "W4 many packs", r"musehub_repack.*"),
    ("W4 clone after repack", "W4 many packs", r"clone total after repack"),
)


class Unreadable(ValueError):
    """A file that holds no bench.run results table (the message says why)."""


@dataclass
class Run:
    """One results file: its set-up, when it ran, the code's commit, and {series label: ratio MuseHub/git}."""

    name: str
    setup: str
    date: dt.datetime
    commit: str
    ratios: dict[str, float] = field(default_factory=dict)


def series_label(workload: str, phase: str) -> str | None:
    """Return the series a (workload, phase) row belongs to, or None for a row the plot leaves out."""
    w5 = _W5.fullmatch(workload)
    if w5:
        size = f"W5 {w5['files']} x {w5['commits']}"
        if phase.startswith("push total"):
            return f"{size}: push"
        if phase == "clone total":
            return f"{size}: clone"
        return None  # "make history" is the client computing ids against git fast-import, not the hub
    for label, name, pattern in SERIES:
        if workload == name and re.fullmatch(pattern, phase):
            return label
    return None


def _setup(title: str) -> str:
    if "embedded" in title:
        return "embedded"
    return title.strip()


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def parse(text: str, name: str = "") -> Run:
    """Return the run a bench.run results file describes; raise Unreadable saying why it is not one."""
    title = _TITLE.search(text)
    if title is None:
        raise Unreadable("not a bench.run results file (no '# MuseHub benchmark (...)' title)")
    date = _DATE.search(text)
    if date is None:
        raise Unreadable("no '- Date: YYYY-MM-DD HH:MM UTC' line")
    run = Run(
        name=name,
        setup=_setup(title["setup"]),
        date=dt.datetime.strptime(date["date"], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC),
        commit=date["commit"] or "",
    )
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if tuple(_cells(line)[:5]) == _HEADER), None)
    if start is None:
        raise Unreadable("no phase table with a 'ratio MuseHub/git' column")
    for line in lines[start + 2 :]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        cells = _cells(line)
        if len(cells) < len(_HEADER):
            continue
        label = series_label(cells[0], cells[1])
        try:
            ratio = float(cells[4])
        except ValueError:
            continue  # "—": a phase git has no counterpart for
        if label is not None and ratio > 0:
            run.ratios[label] = ratio
    if not run.ratios:
        raise Unreadable("its phase table has no ratio the plot knows")
    return run


def load(folder: Path, setup: str = "full") -> tuple[list[Run], list[tuple[str, str]]]:
    """Return the runs of *setup* in *folder* in date order, and (file name, reason) for every file left out."""
    runs: list[Run] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(folder.glob("*.md")):
        if "baseline" in path.stem:
            skipped.append((path.name, "a baseline: older code re-run later for comparison"))
            continue
        try:
            run = parse(path.read_text(encoding="utf-8"), path.name)
        except (Unreadable, OSError, UnicodeDecodeError) as exc:
            skipped.append((path.name, str(exc)))
            continue
        if run.setup != setup:
            skipped.append((path.name, f"set-up {run.setup!r}, not {setup!r}"))
            continue
        runs.append(run)
    runs.sort(key=lambda r: (r.date, r.name))
    return runs, skipped


def labels_of(runs: Sequence[Run]) -> list[str]:
    """Every series that has a point, in the order of SERIES and then W5 by size."""
    present = {label for run in runs for label in run.ratios}
    fixed = [label for label, _, _ in SERIES if label in present]

    def size(label: str) -> tuple[int, int, str]:
        files, _, rest = label.removeprefix("W5 ").partition(" x ")
        commits = rest.split(":")[0]
        return int(files.replace(",", "")), int(commits.replace(",", "")), label

    return fixed + sorted((label for label in present if label.startswith("W5 ")), key=size)


def draw(runs: Sequence[Run], out: Path, setup: str) -> None:
    """Write the plot of *runs* to *out* (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    labels = labels_of(runs)
    panels = [
        ("W1-W4: a tree of 25,000 files (97 MiB); W4: 200 small pushes", [x for x in labels if not x.startswith("W5")]),
        ("W5: long histories (files x commits)", [x for x in labels if x.startswith("W5")]),
    ]
    panels = [(title, names) for title, names in panels if names]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(13, 1.0 + 4.2 * len(panels)), sharex=True, squeeze=False, layout="constrained"
    )
    colours = plt.get_cmap("tab10")
    markers = "os^Dv<>pXh"
    for ax, (title, names) in zip(axes[:, 0], panels, strict=True):
        for i, name in enumerate(names):
            points = [(k, run.ratios[name]) for k, run in enumerate(runs) if name in run.ratios]
            ax.plot(
                [k for k, _ in points],
                [r for _, r in points],
                marker=markers[i % len(markers)],
                color=colours(i % 10),
                linewidth=1.4,
                markersize=5,
                label=name,
            )
        ax.axhline(1.0, color="black", linewidth=1, linestyle="--")
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ticks = [t for t in (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20) if low <= t <= high]
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.grid(True, axis="y", linewidth=0.4, alpha=0.6)
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel("MuseHub / git (log scale)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    bottom = axes[-1, 0]
    bottom.set_xticks(range(len(runs)))
    bottom.set_xticklabels([f"{run.date:%m-%d %H:%M}\n{run.commit}" for run in runs], fontsize=7)
    bottom.set_xlabel(
        "run (UTC date and time, code commit), oldest first. Each point is one results file in bench/results/ "
        "(its medians);\nsome runs ran on other machines, but MuseHub and git always ran side by side on the same one.",
        fontsize=8,
    )
    fig.suptitle(
        f"MuseHub / git wall time per workload over the `make bench` runs ({setup}); below the dashed line MuseHub "
        "is faster",
        fontsize=11,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of results files (bench/results)")
    parser.add_argument("--out", type=Path, default=OUT, help="the PNG to write (bench/results/ratios.png)")
    parser.add_argument("--setup", default="full", help="which runs: full (default), quick or embedded")
    args = parser.parse_args(argv)
    runs, skipped = load(args.results, args.setup)
    for name, reason in skipped:
        print(f"bench.plot: skipped {name}: {reason}")
    if not runs:
        print(f"bench.plot: no {args.setup!r} run with MuseHub/git ratios in {args.results}", file=sys.stderr)
        return 1
    draw(runs, args.out, args.setup)
    print(
        f"bench.plot: {len(runs)} {args.setup} run(s), {runs[0].date:%Y-%m-%d} to {runs[-1].date:%Y-%m-%d}: {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
