"""Helpers for tests of the reference client (musehub_client)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from musehub_client import cli, worktree
from musehub_client.state import STATE_DIR


def run(*argv: str, token: str | None = None) -> tuple[int, str, str]:
    """Run the client's command line in-process with -q (and --token); return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    args = [*argv, "-q"]
    if token:
        args += ["--token", token]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(args)
    return code, out.getvalue(), err.getvalue()


def tree_of(root: Path) -> dict[str, bytes]:
    """Return {relative path: content} of the files of the working tree at *root* (the client's state left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and STATE_DIR not in p.relative_to(root).parts
    }


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
