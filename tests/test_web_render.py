"""What the pages draw from repository content: sanitised Markdown, highlighted text, piano rolls, directory indexes."""

from __future__ import annotations

import io
import re

import mido
import pytest

from musehub_core.manifests import diff_manifests
from repos.readmodel import DirIndex, diff_of
from tests.webkit import midi_bytes
from web.pianoroll import MAX_NOTES, note_name, piano_roll_svg, read_midi
from web.render import highlighted_lines, markdown_html


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        '<a href="javascript:alert(1)">x</a>',
        "[x](javascript:alert(1))",
        '<iframe src="https://evil.example"></iframe>',
        '<div style="background:url(https://evil.example)">x</div>',
        '<svg onload="alert(1)"></svg>',
        '<form action="https://evil.example"><input name="a"></form>',
    ],
)
def test_markdown_never_lets_repository_content_run_or_reach_out(hostile):
    html = markdown_html(f"# Title\n\n{hostile}\n\nafter")
    assert "<h1>Title</h1>" in html and "after" in html
    lowered = html.lower()
    for forbidden in ("<script", "onerror", "onload", 'href="javascript:', "<iframe", "style=", "<form", "<input"):
        assert forbidden not in lowered, (hostile, html)


def test_markdown_keeps_what_a_readme_needs():
    html = markdown_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n- [link](https://example.org)\n\n`code` ~~old~~")
    assert "<table>" in html and "<td>1</td>" in html
    assert 'href="https://example.org"' in html and 'rel="nofollow noopener noreferrer"' in html
    assert "<code>code</code>" in html and "<s>old</s>" in html


def test_highlighted_lines_keep_one_balanced_fragment_per_line():
    text = 'x = """first\nsecond"""\nprint("<b>")\n'
    lines = highlighted_lines("a.py", text)
    assert len(lines) == 3
    for line in lines:
        assert line.count("<span") == line.count("</span>")
    assert "&lt;b&gt;" in lines[2]
    assert highlighted_lines("notes.unknownext", "a\nb") == ["a", "b"]


def test_a_midi_file_gives_its_notes_tempo_tracks_and_length():
    summary = read_midi(midi_bytes(((60, 0, 480), (72, 480, 960)), bpm=120, name="Lead"))
    assert summary.error == "" and summary.tempo_bpm == 120
    assert [t.name for t in summary.tracks] == ["Lead"] and summary.tracks[0].note_count == 2
    assert [(n.pitch, n.start, n.end) for n in summary.notes] == [(60, 0, 480), (72, 480, 1440)]
    assert summary.length_seconds == pytest.approx(1.5, abs=0.01)  # 3 beats at 120 BPM
    svg = piano_roll_svg(summary)
    assert svg.count("<rect") - svg.count('fill="#f1f3f5"') == 2
    assert ">C4<" in svg and ">C5<" in svg and note_name(61) == "C#4"


def test_a_note_never_released_ends_with_its_track_and_a_broken_file_says_so():
    midi = mido.MidiFile()
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.Message("note_on", note=64, velocity=90, time=0))
    track.append(mido.Message("note_on", note=67, velocity=90, time=240))
    track.append(mido.MetaMessage("end_of_track", time=240))
    out = io.BytesIO()
    midi.save(file=out)
    summary = read_midi(out.getvalue())
    assert sorted((n.pitch, n.end) for n in summary.notes) == [(64, 480), (67, 480)]
    broken = read_midi(b"MThd not really")
    assert broken.error.startswith("This file could not be read as MIDI") and piano_roll_svg(broken) == ""


def test_a_huge_midi_file_draws_at_most_max_notes():
    notes = tuple((36 + i % 48, i * 10, 10) for i in range(MAX_NOTES + 50))
    summary = read_midi(midi_bytes(notes))
    assert summary.total_notes == MAX_NOTES + 50 and len(summary.notes) == MAX_NOTES and summary.truncated
    assert len(re.findall(r"<title>", piano_roll_svg(summary))) == MAX_NOTES


def test_a_directory_index_lists_folders_first_and_pages_across_the_boundary():
    manifest = {"b.txt": "1", "a/x.txt": "2", "a/y/z.txt": "3", "c/d/e/f.txt": "4", "0.txt": "5"}
    index = DirIndex.of(manifest)
    assert [(e.name, e.kind) for e in index.listing("")] == [
        ("a", "dir"),
        ("c", "dir"),
        ("0.txt", "file"),
        ("b.txt", "file"),
    ]
    assert [e.name for e in index.listing("", offset=1, limit=2)] == ["c", "0.txt"]
    assert [e.path for e in index.listing("c/d")] == ["c/d/e"]
    assert index.file("a/y/z.txt") == "3" and index.file("a/y") is None and index.is_dir("a/y")
    assert not index.is_dir("b.txt") and index.listing_size("a") == 2


@pytest.mark.parametrize("seed", range(20))
def test_the_fast_manifest_diff_answers_like_the_core_one(seed):
    import random

    rng = random.Random(seed)
    old = {f"p{i}": str(rng.randint(0, 2)) for i in range(40) if rng.random() < 0.6}
    new = {f"p{i}": str(rng.randint(0, 2)) for i in range(40) if rng.random() < 0.6}
    assert diff_of(old, new) == diff_manifests(old, new)


@pytest.mark.parametrize(
    ("folder", "url", "expected"),
    [
        ("", "docs/guide.md", ("docs/guide.md", "")),
        ("docs", "guide.md#intro", ("docs/guide.md", "#intro")),
        ("docs/a", "../../cover.png", ("cover.png", "")),
        ("docs", "./", ("docs", "")),
        ("docs", "../../outside", None),
    ],
)
def test_relative_urls_resolve_inside_the_tree_or_not_at_all(folder, url, expected):
    from web.render import resolve_relative

    assert resolve_relative(folder, url) == expected


def test_only_relative_urls_are_handed_to_the_rewriter():
    seen = []
    html = markdown_html(
        "[a](x.md) [b](https://e.org) [c](#top) [d](/abs) [e](mailto:a@b.c) ![i](p.png)",
        relative=lambda tag, url: seen.append((tag, url)) or f"/R/{url}",
    )
    assert seen == [("a", "x.md"), ("img", "p.png")]
    assert 'href="/R/x.md"' in html and 'src="/R/p.png"' in html and 'href="https://e.org"' in html
