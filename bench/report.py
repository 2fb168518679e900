"""Medians over runs, machine information and the markdown results table."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from bench.workloads import Measure, Quantity
from musehub_core.formatting import human_bytes

COLUMNS = (
    "workload",
    "phase",
    "MuseHub median s",
    "git median s",
    "ratio MuseHub/git",
    "storage GETs (all reqs)",
    "storage bytes read",
    "DB queries (statements)",
    "server peak RSS MB (+growth)",
)


@dataclass
class Row:
    workload: str
    phase: str
    muse: list[float] = field(default_factory=list)
    git: list[float] = field(default_factory=list)
    stats: list[dict[str, float]] = field(default_factory=list)
    server: bool = True


def collect(runs: Iterable[list[Measure]]) -> list[Row]:
    """Group the measures of every run by (workload, phase), keeping the first run's order."""
    rows: dict[tuple[str, str], Row] = {}
    for measures in runs:
        for m in measures:
            row = rows.setdefault((m.workload, m.phase), Row(m.workload, m.phase, server=m.server))
            if m.seconds is not None:
                row.muse.append(m.seconds)
            if m.git_seconds is not None:
                row.git.append(m.git_seconds)
            if m.server:
                row.stats.append(m.server_stats())
    return list(rows.values())


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(COLUMNS) - 2)) + "|"]
    for row in rows:
        muse, git = median(row.muse), median(row.git)
        ratio = f"{muse / git:.2f}" if muse is not None and git else "—"
        if row.server and row.stats:

            def med(key: str, row: Row = row) -> float:
                return statistics.median(s[key] for s in row.stats)

            gets = f"{med('gets'):.0f} ({med('s3_requests'):.0f})"
            read = human_bytes(med("get_bytes"))
            queries = f"{med('db_queries'):.0f}"
            if med("db_statements") != med("db_queries"):
                queries += f" ({med('db_statements'):,.0f})"
            rss = f"{med('peak_rss_mb'):.0f} (+{med('rss_growth_mb'):.0f})" if med("requests") else "—"
        else:
            gets = read = queries = rss = "—"
        lines.append(
            "| "
            + " | ".join([row.workload, row.phase, _seconds(muse), _seconds(git), ratio, gets, read, queries, rss])
            + " |"
        )
    return "\n".join(lines)


@dataclass
class QuantityRow:
    workload: str
    name: str
    unit: str
    muse: list[float] = field(default_factory=list)
    git: list[float] = field(default_factory=list)
    max_ratio: float | None = None
    below: float | None = None


def collect_quantities(runs: Iterable[list[Quantity]]) -> list[QuantityRow]:
    """Group the quantities of every run by (workload, name), keeping the first run's order."""
    rows: dict[tuple[str, str], QuantityRow] = {}
    for quantities in runs:
        for q in quantities:
            row = rows.setdefault((q.workload, q.name), QuantityRow(q.workload, q.name, q.unit, **_targets(q)))
            if q.muse is not None:
                row.muse.append(q.muse)
            if q.git is not None:
                row.git.append(q.git)
    return list(rows.values())


def _targets(q: Quantity) -> dict[str, float | None]:
    return {"max_ratio": q.max_ratio, "below": q.below}


def _amount(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "ms":
        return f"{value:.1f} ms"
    return _seconds(value)


def _target(row: QuantityRow, muse: float | None, git: float | None) -> str:
    if row.max_ratio is not None:
        if muse is None or not git:
            return f"ratio ≤ {row.max_ratio:g}: —"
        return f"ratio ≤ {row.max_ratio:g}: {'met' if muse / git <= row.max_ratio else '**missed**'}"
    if row.below is not None:
        if muse is None:
            return "—"
        limit = _amount(row.below, row.unit)
        return f"< {limit}: {'met' if muse < row.below else '**missed**'}"
    return ""


def quantity_table(rows: list[QuantityRow]) -> str:
    """The W5 figures that are not phase times: MuseHub, git, ratio and the issue's target (medians over runs)."""
    lines = [
        "| workload | quantity | MuseHub | git | ratio MuseHub/git | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        muse, git = median(row.muse), median(row.git)
        ratio = f"{muse / git:.2f}" if muse is not None and git else "—"
        lines.append(
            "| "
            + " | ".join(
                [
                    row.workload,
                    row.name,
                    _amount(muse, row.unit),
                    _amount(git, row.unit),
                    ratio,
                    _target(row, muse, git),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def per_run_table(rows: list[Row]) -> str:
    """Every run's MuseHub / git seconds for the rows compared with git (to show the spread behind the medians)."""
    compared = [r for r in rows if r.git]
    runs = max((len(r.muse) for r in compared), default=0)
    head = ["workload", "phase", *[f"run {i + 1}: MuseHub / git s" for i in range(runs)]]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * runs]
    for row in compared:
        cells = [
            f"{_seconds(m)} / {_seconds(g)}"
            for m, g in zip(row.muse, row.git + [None] * (len(row.muse) - len(row.git)), strict=False)
        ]
        lines.append("| " + " | ".join([row.workload, row.phase, *cells]) + " |")
    return "\n".join(lines)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def machine_info(pg_version: str, git_version: str) -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if line.startswith("MemTotal")), 0
    )
    os_name = next(
        (
            line.split("=", 1)[1].strip().strip('"')
            for line in _read("/etc/os-release").splitlines()
            if line.startswith("PRETTY_NAME=")
        ),
        platform.system(),
    )
    try:
        from importlib.metadata import version

        libs = ", ".join(f"{name} {version(name)}" for name in ("Django", "gunicorn", "psycopg", "moto", "zstandard"))
    except Exception:  # noqa: BLE001
        libs = ""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except Exception:  # noqa: BLE001
        commit = ""
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": f"{os.cpu_count()} x {cpu}",
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": f"{os_name}, Linux {platform.release()}",
        "python": platform.python_version(),
        "postgresql": pg_version,
        "git": git_version,
        "libraries": libs,
        "commit": commit,
    }


def command_line() -> str:
    args = " ".join(sys.argv[1:])
    return f"python -m bench.run {args}".strip()


def document(
    *,
    title: str,
    info: dict[str, str],
    setup: list[str],
    rows: list[Row],
    notes: list[str],
    command: str,
    sections: list[str] | None = None,
) -> str:
    """The results file: header, the phase table, *sections* (markdown blocks, e.g. W5's figures), spread, notes."""
    header = [
        f"# {title}",
        "",
        f'- Command: `{command}` (from the repository root; `make bench BENCH_ARGS="..."` runs the same)',
        f"- Date: {info['date']}; code at commit {info['commit'] or '?'} (plus uncommitted changes, if any)",
        f"- Machine: {info['cpu']}, {info['ram']} RAM; {info['os']}",
        f"- Python {info['python']}; PostgreSQL {info['postgresql']}; {info['git']}; {info['libraries']}",
        *[f"- {line}" for line in setup],
        "",
        table(rows),
        "",
        *[block + "\n" for block in sections or []],
        "Every run (the spread behind the medians):",
        "",
        per_run_table(rows),
        "",
        "Notes:",
        "",
        *[f"- {line}" for line in notes],
        "",
    ]
    return "\n".join(header)
