"""bench/plot.py reads back the results files bench/report.py writes, and skips what it cannot read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench import plot, report

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"
INFO = {
    "date": "2026-12-01 09:30 UTC",
    "commit": "abc1234",
    "cpu": "2 x test",
    "ram": "1.0 GiB",
    "os": "test",
    "python": "3.11",
    "postgresql": "15",
    "git": "git 2.39",
    "libraries": "",
}


def written(title: str, rows: list[report.Row]) -> str:
    return report.document(title=title, info=INFO, setup=[], rows=rows, notes=[], command="python -m bench.run")


def test_reads_the_ratio_column_report_writes():
    rows = [
        report.Row("W1 push", "client pack (scan+hash+build)", muse=[1.0, 1.2, 1.1], git=[4.0, 4.4, 4.2], server=False),
        report.Row("W1 push", "upload (slot + PUT)", muse=[0.5], server=False),  # no git: "—", left out
        report.Row("W2 clone", "total", muse=[1.5, 1.7, 1.6], git=[3.0, 3.1, 3.2], server=False),
        report.Row("W4 many packs", "30 small pushes", muse=[2.0], git=[4.0], server=False),
        report.Row("W5 history 10,000 files x 300 commits", "clone total", muse=[1.2], git=[2.4], server=False),
        report.Row(
            "W5 history 10,000 files x 300 commits", "make history (MuseHub: ids)", muse=[1], git=[2], server=False
        ),
    ]
    run = plot.parse(written("MuseHub benchmark (full)", rows), "x.md")
    assert run.setup == "full" and run.commit == "abc1234"
    assert run.date == dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert run.ratios == {
        "W1 client pack (git add + commit)": pytest.approx(1.1 / 4.2, abs=0.005),
        "W2 clone": pytest.approx(1.6 / 3.1, abs=0.005),
        "W4 small pushes": 0.5,
        "W5 10,000 x 300: clone": 0.5,
    }
    embedded = plot.parse(written("MuseHub benchmark (full, embedded: SQLite and filesystem storage)", rows))
    assert embedded.setup == "embedded"


def test_older_wordings_land_in_the_same_series():
    assert plot.series_label("W4 many packs", "musehub_repack (git: repack -a -d)") == plot.series_label(
        "W4 many packs", "musehub_repack --all (git: repack -a -d)"
    )
    assert plot.series_label("W4 many packs", "200 small pushes") == "W4 small pushes"
    assert plot.series_label("W1 push", "server unpack (mpack/push)") is None
    assert plot.series_label("W5 history 25,000 files x 1,000 commits", "push total (10 pushes; git: git push)") == (
        "W5 25,000 x 1,000: push"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# MuseHub core 25k (service functions, no HTTP)\n\n| step | seconds |\n", "no '# MuseHub benchmark"),
        ("# MuseHub benchmark (full)\n\nno date here\n", "no '- Date"),
        ("# MuseHub benchmark (full)\n- Date: 2026-11-21 06:08 UTC\n\n| a | b |\n|---|---|\n", "no phase table"),
    ],
)
def test_what_is_not_a_results_file_is_refused_with_its_reason(text, reason):
    with pytest.raises(plot.Unreadable, match=reason):
        plot.parse(text)


def test_the_newest_full_run_reads_as_recorded():
    run = plot.parse((RESULTS / "2026-11-30-full-latenight-final.md").read_text(), "newest")
    assert (run.setup, run.commit) == ("full", "6c3094f")
    assert run.ratios["W2 clone"] == 0.56
    assert run.ratios["W1 push: upload + unpack (git push)"] == 0.35
    assert run.ratios["W5 25,000 x 1,000: push"] == 3.35


def test_load_keeps_one_setup_in_date_order_and_says_what_it_skipped(tmp_path):
    rows = [report.Row("W2 clone", "total", muse=[1.0], git=[2.0], server=False)]
    (tmp_path / "b-full.md").write_text(written("MuseHub benchmark (full)", rows))
    (tmp_path / "a-quick.md").write_text(written("MuseHub benchmark (quick)", rows))
    (tmp_path / "c-baseline-1234.md").write_text(written("MuseHub benchmark (full)", rows))
    (tmp_path / "notes.md").write_text("# Notes\n")
    later = written("MuseHub benchmark (full)", rows).replace("2026-12-01 09:30", "2026-12-02 08:00")
    (tmp_path / "a-full-later.md").write_text(later)
    runs, skipped = plot.load(tmp_path)
    assert [r.name for r in runs] == ["b-full.md", "a-full-later.md"]
    assert {name for name, _ in skipped} == {"a-quick.md", "c-baseline-1234.md", "notes.md"}


def test_draws_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    runs, _ = plot.load(RESULTS)
    out = tmp_path / "ratios.png"
    plot.draw(runs, out, "full")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
