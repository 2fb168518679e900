"""Helpers shared by the maintenance tests: run a command, push a series, fetch everything back."""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from musehub_core.ids import blob_id
from musehub_core.mpack import parse_wire_mpack
from repos.models import Branch, MPackIndex
from repos.storage.backend import get_backend
from tests.factories import History, push_history
from wire.fetch import wire_fetch_mpack

MPACK_READS = {"get_mpack", "open_mpack", "get_range"}


def run(name: str, *args: str) -> str:
    """Run command *name* and return what it printed on stdout."""
    out, err = StringIO(), StringIO()
    call_command(name, *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue()


def run_json(name: str, *args: str) -> dict:
    return json.loads(run(name, *args, "--json"))


def run_failing(name: str, *args: str) -> tuple[CommandError, str]:
    """Run command *name*, expecting it to fail; return (the CommandError, its stdout)."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(name, *args, "--no-progress", stdout=out, stderr=err)
    return caught.value, out.getvalue()


def fsck_failure(*args: str) -> tuple[CommandError, str, dict]:
    """Run musehub_fsck twice (text and --json), both expected to fail; return (error, text, parsed JSON)."""
    error, text = run_failing("musehub_fsck", *args)
    _, as_json = run_failing("musehub_fsck", *args, "--json")
    return error, text, json.loads(as_json)


def codes(report: dict) -> dict[str, set[str]]:
    """Return {problem code: {subject ids}} from an fsck JSON report."""
    found: dict[str, set[str]] = {}
    for problem in report["problems"]:
        found.setdefault(problem["code"], set()).add(problem["subject"])
    return found


def push_series(repo, count: int, *, size: int = 600, history: History | None = None) -> History:
    """Push *count* commits to *repo*'s main branch, one push each, each adding one new file of *size* bytes.

    The automatic repack is off while it pushes: these tests arrange the packs themselves.
    """
    history = history or History()
    with override_settings(MUSEHUB_AUTO_REPACK_PACKS=0):
        _push_each(repo, history, count, size)
    return history


def _push_each(repo, history: History, count: int, size: int) -> None:
    for i in range(count):
        parents = [history.commits[-1]["commit_id"]] if history.commits else []
        content = (f"file {i} of {repo.slug}\n".encode() * (size // 16 + 1))[:size]
        before = set(history.blobs)
        commit = history.commit({f"f{i:03}.txt": content}, parents=parents)
        new = {oid: raw for oid, raw in history.blobs.items() if oid not in before}
        push_history(repo, history, commits=[commit], blobs=new, zstd=i % 2 == 0)


def random_blob(size: int) -> bytes:
    return os.urandom(size)


def fetch_all(repo) -> tuple[dict, dict[str, bytes]]:
    """Fetch every branch of *repo* from nothing; return (the fetch result, {object_id: raw bytes})."""
    heads = list(Branch.objects.filter(repo=repo).values_list("head_commit_id", flat=True))
    result = wire_fetch_mpack(repo, want=heads, have=[])
    pack = parse_wire_mpack(get_backend().get_mpack(result["mpack_id"]))
    blobs = {b["object_id"]: bytes(b["content"]) for b in pack["blobs"]}
    assert all(blob_id(raw) == oid for oid, raw in blobs.items())
    return result, blobs


def packs_read(ops) -> set[str]:
    return {op.key for op in ops if op.op in MPACK_READS}


def index_of(object_id: str) -> list[tuple[str, int | None, int | None, str]]:
    return list(MPackIndex.objects.filter(entity_id=object_id).values_list("mpack_id", "offset", "length", "encoding"))
