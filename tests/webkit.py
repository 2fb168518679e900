"""Shared fixtures of the web page tests: a repository with text, Markdown, MIDI, an image and a binary, and two branches."""

from __future__ import annotations

import io
from dataclasses import dataclass

import mido

from tests.factories import History, make_repo, make_user, push_history, uid

PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201ffa3bd3f870000000049454e44ae426082"
)


def midi_bytes(notes=((60, 0, 480), (64, 480, 480), (67, 960, 960)), *, bpm: float = 90, name: str = "Piano") -> bytes:
    """Return a one-track Standard MIDI File playing *notes* ((pitch, start tick, length), ...)."""
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    track.append(mido.MetaMessage("track_name", name=name))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    events = []
    for pitch, start, length in notes:
        events.append((start, 1, mido.Message("note_on", note=pitch, velocity=100)))
        events.append((start + length, 0, mido.Message("note_off", note=pitch, velocity=0)))
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


@dataclass
class Songs:
    owner: object
    repo: object
    history: History
    main: dict
    feature: dict

    @property
    def url(self) -> str:
        return f"/{self.repo.owner}/{self.repo.slug}"


MAIN_FILES = {
    "README.md": b"# Songs\n\nA **bold** start.\n\n<script>alert('x')</script>\n\n[evil](javascript:alert(1))\n",
    "src/play.py": b"def play(note):\n    return '<%s>' % note\n",
    "tune.mid": midi_bytes(),
    "cover.png": PNG_1X1,
    "data.bin": b"\x00\x01\x02binary",
}


def make_songs(visibility: str = "public", owner=None) -> Songs:
    """Push a main branch (one commit) and a feature branch (one more commit changing play.py) as *owner*."""
    owner = owner or make_user(f"alice-{uid()}")
    repo = make_repo(owner, f"songs-{uid()}", visibility=visibility)
    history = History()
    main = history.commit(MAIN_FILES, message="First take\n\nWith a body.")
    push_history(repo, history)
    feature_files = {**MAIN_FILES, "src/play.py": b"def play(note):\n    return '[%s]' % note\n", "new.txt": b"new\n"}
    feature = history.commit(feature_files, parents=[main["commit_id"]], message="Brackets", branch="feature")
    push_history(repo, history, commits=[feature], branch="feature")
    return Songs(owner=owner, repo=repo, history=history, main=main, feature=feature)


def make_readme_repo(readme: bytes, owner=None) -> Songs:
    """Push one commit holding *readme* as README.md beside cover.png (a 1x1 PNG) as *owner*."""
    owner = owner or make_user(f"reader-{uid()}")
    repo = make_repo(owner, f"readme-{uid()}")
    history = History()
    main = history.commit({"README.md": readme, "cover.png": PNG_1X1}, message="A README")
    push_history(repo, history)
    return Songs(owner=owner, repo=repo, history=history, main=main, feature=main)
