"""MIDI files as a piano roll: notes read with mido, drawn server-side as an SVG (no JavaScript).

:func:`read_midi` returns the tracks, tempo, length and notes of a Standard
MIDI File; :func:`piano_roll_svg` draws them (time across, pitch up, one colour
per track). A file mido cannot read gives a ``MidiSummary`` with ``error`` set,
never an exception, so the page can still offer the download.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from html import escape

import mido

MAX_NOTES = 20_000  # drawn at most; a longer file says how many were left out
PALETTE = ("#2f6fdf", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c2255c", "#5c940d")
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


@dataclass(frozen=True)
class Note:
    track: int
    channel: int
    pitch: int
    velocity: int
    start: int  # ticks
    end: int


@dataclass
class Track:
    index: int
    name: str
    note_count: int = 0

    @property
    def colour(self) -> str:
        return PALETTE[self.index % len(PALETTE)]


@dataclass
class MidiSummary:
    midi_type: int = 0
    ticks_per_beat: int = 480
    tempo_bpm: float | None = None
    length_seconds: float | None = None
    time_signature: str = ""
    tracks: list[Track] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    total_notes: int = 0
    error: str = ""

    @property
    def end_tick(self) -> int:
        return max((n.end for n in self.notes), default=0)

    @property
    def truncated(self) -> bool:
        return self.total_notes > len(self.notes)


def note_name(pitch: int) -> str:
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def read_midi(raw: bytes) -> MidiSummary:
    """Return what *raw* (a Standard MIDI File) holds; ``error`` says why when it cannot be read."""
    try:
        midi = mido.MidiFile(file=io.BytesIO(raw), clip=True)
    except Exception as exc:  # mido raises many kinds (OSError, EOFError, ValueError, KeyError...)
        return MidiSummary(error=f"This file could not be read as MIDI ({exc.__class__.__name__}: {exc}).")
    summary = MidiSummary(midi_type=midi.type, ticks_per_beat=midi.ticks_per_beat or 480)
    try:
        summary.length_seconds = midi.length
    except (ValueError, TypeError):  # type 2 files have no single timeline
        summary.length_seconds = None
    for index, track in enumerate(midi.tracks):
        info = Track(index=index, name=track.name or f"Track {index + 1}")
        now = 0
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        for message in track:
            now += message.time
            if message.type == "set_tempo" and summary.tempo_bpm is None:
                summary.tempo_bpm = round(mido.tempo2bpm(message.tempo), 2)
            elif message.type == "time_signature" and not summary.time_signature:
                summary.time_signature = f"{message.numerator}/{message.denominator}"
            elif message.type == "note_on" and message.velocity > 0:
                sounding[(message.channel, message.note)] = (now, message.velocity)
            elif message.type in ("note_off", "note_on"):
                started = sounding.pop((message.channel, message.note), None)
                if started is not None:
                    _add(summary, info, Note(index, message.channel, message.note, started[1], started[0], now))
        for (channel, pitch), (start, velocity) in sounding.items():  # never released: ends with the track
            _add(summary, info, Note(index, channel, pitch, velocity, start, max(now, start + 1)))
        summary.tracks.append(info)
    if summary.tempo_bpm is None:
        summary.tempo_bpm = 120.0  # the MIDI default
    return summary


def _add(summary: MidiSummary, track: Track, note: Note) -> None:
    track.note_count += 1
    summary.total_notes += 1
    if len(summary.notes) < MAX_NOTES:
        summary.notes.append(note)


def piano_roll_svg(summary: MidiSummary, *, width: int = 1000, row: int = 6) -> str:
    """Return an SVG drawing of *summary*'s notes: one row per pitch in use, a bar line every measure."""
    if not summary.notes:
        return ""
    low = min(n.pitch for n in summary.notes)
    high = max(n.pitch for n in summary.notes)
    low, high = max(0, low - 1), min(127, high + 1)
    rows = high - low + 1
    gutter = 36
    height = rows * row
    end = max(summary.end_tick, 1)
    scale = (width - gutter) / end
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="pianoroll" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Piano roll of {summary.total_notes} notes">'
    ]
    for pitch in range(low, high + 1):  # black keys shaded, C rows labelled
        y = (high - pitch) * row
        if NOTE_NAMES[pitch % 12].endswith("#"):
            parts.append(f'<rect x="{gutter}" y="{y}" width="{width - gutter}" height="{row}" fill="#f1f3f5"/>')
        if pitch % 12 == 0:
            parts.append(
                f'<text x="2" y="{y + row}" font-size="{max(row + 2, 8)}" fill="#495057">{note_name(pitch)}</text>'
                f'<line x1="{gutter}" x2="{width}" y1="{y + row}" y2="{y + row}" stroke="#dee2e6"/>'
            )
    measure = summary.ticks_per_beat * _beats_per_measure(summary.time_signature)
    if measure * scale >= 4:
        for tick in range(0, end + 1, measure):
            x = gutter + tick * scale
            parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#ced4da"/>')
    for note in summary.notes:
        x = gutter + note.start * scale
        w = max((note.end - note.start) * scale, 1.0)
        y = (high - note.pitch) * row
        colour = PALETTE[note.track % len(PALETTE)]
        opacity = 0.45 + 0.55 * (note.velocity / 127)
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{colour}" '
            f'fill-opacity="{opacity:.2f}"><title>{escape(note_name(note.pitch))} '
            f"v{note.velocity} track {note.track + 1}</title></rect>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _beats_per_measure(signature: str) -> int:
    numerator, _, denominator = signature.partition("/")
    try:
        return max(1, int(int(numerator) * 4 / int(denominator)))
    except (ValueError, ZeroDivisionError):
        return 4
