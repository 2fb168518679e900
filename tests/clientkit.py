"""Helpers for tests of the reference client (musehub_client)."""

from __future__ import annotations

from pathlib import Path

from musehub_client import worktree


def spy_reads(monkeypatch) -> list[Path]:
    """Record every file the client's scan reads from now on (whole in a batch, or in chunks), as paths."""
    reads: list[Path] = []
    hash_file, read_files = worktree.hash_file, worktree.read_files

    def hashing(path):
        reads.append(Path(path))
        return hash_file(path)

    def reading(root, relatives, **options):
        reads.extend(Path(root) / relative for relative in relatives)
        return read_files(root, relatives, **options)

    monkeypatch.setattr(worktree, "hash_file", hashing)
    monkeypatch.setattr(worktree, "read_files", reading)
    return reads
