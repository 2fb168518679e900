"""Seeded file trees for the benchmark: the same bytes for MuseHub and for git, every run.

Sizes follow a log-normal distribution (sigma 1.0) whose mean is ``mean_size``
(4 KiB by default: the median file is about 2.5 KiB, a few are hundreds of KiB),
clamped to [1 B, 1 MiB]. Content is a mix, chosen per file from the seeded RNG:

- text (50 %): words from a fixed vocabulary, compresses about 3x with zstd;
- binary (30 %): random bytes, incompressible;
- mixed (20 %): runs of random bytes and runs of one repeated byte, about 2x.

Files live in nested folders ``dNN/sNN/`` (about 100 files per folder).
"""

from __future__ import annotations

import io
import math
import os
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_FILE = 1024 * 1024
SIGMA = 1.0
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "zu", "be", "do", "fa", "gi", "ho", "ja", "pe"]
_EXT = {"text": (".txt", ".md", ".py", ".json"), "binary": (".bin", ".dat"), "mixed": (".mid", ".wav")}


@dataclass(frozen=True)
class TreeSpec:
    files: int
    mean_size: int = 4096
    seed: int = 20260101


@dataclass
class TreeInfo:
    root: Path
    files: int
    total_bytes: int
    paths: list[str]


def _vocabulary(rng: random.Random, count: int = 3000) -> list[str]:
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


class ContentMaker:
    """Makes seeded file contents of a given size and kind."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.vocab = _vocabulary(rng)

    def kind(self) -> str:
        roll = self.rng.random()
        return "text" if roll < 0.5 else ("binary" if roll < 0.8 else "mixed")

    def make(self, kind: str, size: int) -> bytes:
        rng = self.rng
        if kind == "binary":
            return rng.randbytes(size)
        if kind == "mixed":
            parts: list[bytes] = []
            left = size
            while left > 0:
                run = min(left, rng.randint(16, 256))
                parts.append(rng.randbytes(run) if rng.random() < 0.5 else bytes([rng.randrange(256)]) * run)
                left -= run
            return b"".join(parts)
        words = rng.choices(self.vocab, k=size // 5 + 8)
        text = " ".join(words).encode()
        while len(text) < size:  # pragma: no cover (k is generous)
            text += text
        return text[:size]


def _sizes(rng: random.Random, count: int, mean: int) -> list[int]:
    mu = math.log(mean) - SIGMA**2 / 2
    return [max(1, min(MAX_FILE, int(rng.lognormvariate(mu, SIGMA)))) for _ in range(count)]


def tree_paths(count: int, kinds: list[str]) -> list[str]:
    """Return nested relative paths for *count* files (about 100 per folder, 10 top-level folders)."""
    per_dir = 100
    paths = []
    for i in range(count):
        folder = i // per_dir
        ext = _EXT[kinds[i]][i % len(_EXT[kinds[i]])]
        paths.append(f"d{folder % 10:02d}/s{folder // 10:03d}/f{i:05d}{ext}")
    return paths


def tree_contents(spec: TreeSpec) -> Iterator[tuple[str, bytes]]:
    """Yield (relative path, content) of every file of the seeded tree of *spec*, in path order."""
    rng = random.Random(spec.seed)
    maker = ContentMaker(rng)
    sizes = _sizes(rng, spec.files, spec.mean_size)
    kinds = [maker.kind() for _ in range(spec.files)]
    paths = tree_paths(spec.files, kinds)
    for relative, size, kind in zip(paths, sizes, kinds, strict=True):
        yield relative, maker.make(kind, size)


def make_tree(root: Path, spec: TreeSpec) -> TreeInfo:
    """Write the seeded tree of *spec* into the new folder *root*."""
    paths: list[str] = []
    total = 0
    for relative, data in tree_contents(spec):
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        paths.append(relative)
        total += len(data)
    return TreeInfo(root=root, files=spec.files, total_bytes=total, paths=paths)


def edit(maker: ContentMaker, old: bytes) -> bytes:
    """Return *old* with its first half kept and the rest replaced by new text, as an edit would (W3, W5)."""
    cut = len(old) // 2
    return old[:cut] + maker.make("text", max(64, len(old) - cut))


def change_files(root: Path, paths: list[str], count: int, seed: int) -> list[str]:
    """Rewrite *count* seeded-chosen files of *paths* under *root* with new seeded content; return them.

    Calling it with the same arguments on two copies of a tree makes the same change.
    """
    rng = random.Random(seed)
    maker = ContentMaker(rng)
    chosen = sorted(rng.sample(paths, count))
    for relative in chosen:
        target = root / relative
        target.write_bytes(edit(maker, target.read_bytes()))
    return chosen


@dataclass
class History:
    """A seeded linear history (W5): a whole tree, then commits that each rewrite a few of its files.

    ``initial[i]`` is the content of ``paths[i]`` in the first commit;
    ``edits[k]`` lists (path index, new content) for commit ``k + 1``. Commit
    ``n`` is committed at ``HISTORY_EPOCH + n`` minutes.
    """

    paths: list[str]
    initial: list[bytes]
    edits: list[list[tuple[int, bytes]]]

    @property
    def commits(self) -> int:
        return 1 + len(self.edits)

    @property
    def tree_bytes(self) -> int:
        return sum(len(c) for c in self.initial)

    @property
    def edit_bytes(self) -> int:
        return sum(len(c) for step in self.edits for _, c in step)


HISTORY_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z


def make_history(files: int, commits: int, changed: int, seed: int) -> History:
    """Return the seeded history of *commits* commits over a tree of *files* files (the tree of ``make_tree``).

    Every commit after the first rewrites *changed* distinct files chosen by the
    seeded RNG, each the way :func:`edit` does (first half kept, the rest new
    text), so a file can change many times. The same arguments give the same bytes.
    """
    paths: list[str] = []
    initial: list[bytes] = []
    for relative, content in tree_contents(TreeSpec(files, seed=seed)):
        paths.append(relative)
        initial.append(content)
    rng = random.Random(seed * 1_000_003 + 5)
    maker = ContentMaker(rng)
    current = list(initial)
    edits: list[list[tuple[int, bytes]]] = []
    for _ in range(commits - 1):
        step = []
        for index in sorted(rng.sample(range(files), min(changed, files))):
            current[index] = edit(maker, current[index])
            step.append((index, current[index]))
        edits.append(step)
    return History(paths=paths, initial=initial, edits=edits)


def history_time(commit: int) -> int:
    """Return the Unix time commit number *commit* of a :class:`History` carries."""
    return HISTORY_EPOCH + 60 * commit


def write_fast_import(history: History, out: IO[bytes], *, branch: str = "main", author: str = "bench") -> None:
    """Write *history* as a ``git fast-import`` stream to *out*: commit n gets mark ``:n+1``."""
    who = f"{author} <{author}@127.0.0.1>".encode()

    def data(payload: bytes) -> None:
        out.write(b"data %d\n" % len(payload))
        out.write(payload)
        out.write(b"\n")

    out.write(b"feature done\n")
    for number in range(history.commits):
        out.write(f"commit refs/heads/{branch}\nmark :{number + 1}\n".encode())
        out.write(b"committer " + who + b" %d +0000\n" % history_time(number))
        data(history_message(number).encode())
        changes = enumerate(history.initial) if number == 0 else history.edits[number - 1]
        for index, content in changes:
            out.write(f"M 100644 inline {history.paths[index]}\n".encode())
            data(content)
    out.write(b"done\n")


def history_message(commit: int) -> str:
    return f"W5 commit {commit}"


def small_commit_files(
    step: int, seed: int, files_per_commit: int, size_range: tuple[int, int]
) -> Iterator[tuple[str, bytes]]:
    """Yield (relative path, content) for commit *step* of the many-small-pushes workload (W4).

    Each commit adds ``files_per_commit - 1`` new files and rewrites one file of
    an earlier commit, so the history holds every version.
    """
    rng = random.Random(seed * 1_000_003 + step)
    maker = ContentMaker(rng)
    for j in range(files_per_commit - 1):
        size = rng.randint(*size_range)
        yield f"w4/c{step:04d}/n{j}.bin", maker.make(rng.choice(["binary", "mixed", "text"]), size)
    if step > 0:
        earlier = rng.randrange(step)
        size = rng.randint(*size_range)
        yield f"w4/c{earlier:04d}/n0.bin", maker.make("mixed", size)


def copy_tree(source: Path, target: Path) -> None:
    """Copy *source* to the new folder *target* (files only, no MuseHub or git state)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".musehub", ".git"))


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".musehub", ".git")]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames)
    return total


def one_commit_pack(
    manifest: dict[str, str], blobs: dict[str, bytes], parent: str | None, message: str, *, author: str
) -> tuple[bytes, str, dict]:
    """Return (pack bytes, key, commit) for one commit of *manifest* holding *blobs* (zstd where it pays)."""
    from musehub_client.packs import make_commit
    from musehub_core.mpack import MPackWriter, encode_blob

    commit, snapshot = make_commit(manifest, parent, branch="main", message=message, author=author)
    buffer = io.BytesIO()
    writer = MPackWriter(buffer)
    writer.write_commits([commit])
    writer.write_snapshots([snapshot])
    writer.begin_blobs(len(blobs))
    for oid, raw in blobs.items():
        stored, encoding = encode_blob(raw)
        writer.write_blob(oid, stored, encoding)
    key, _size = writer.finish({"main": commit["commit_id"]})
    return buffer.getvalue(), key, commit
