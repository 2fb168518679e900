"""musehub_stats reports what was pushed; every maintenance command shares --json, --no-progress and --repo."""

from __future__ import annotations

import io
from io import StringIO

import pytest
from django.core.management import call_command

from musehub_core.ids import blob_id
from repos.management.base import MaintenanceCommand
from repos.models import MPack
from repos.services.commits import commit_files_to_repo
from repos.services.maintenance import no_progress
from tests.factories import History, make_repo, push_history
from tests.maintkit import fetch_all, push_series, random_blob, run, run_failing, run_json

pytestmark = pytest.mark.django_db

COMMANDS = ("musehub_fsck", "musehub_gc", "musehub_repack", "musehub_migrate_legacy", "musehub_stats")


class Terminal(io.StringIO):
    """A stderr that claims to be a terminal, so progress bars switch on."""

    def isatty(self) -> bool:
        return True


def test_stats_match_what_was_pushed(backend, settings):
    settings.MUSEHUB_CONTENT_CACHE_MAX_BYTES = 4096  # off by default; on here so the cached figures count something
    big_repo, small_repo = make_repo(), make_repo()
    history = History()
    files = {"a.txt": b"alpha" * 1000, "b.bin": random_blob(3000), "c.txt": b"tiny"}
    first = history.commit(files)
    history.commit({**files, "d.txt": b"delta"}, parents=[first["commit_id"]])
    push_history(big_repo, history)
    commit_files_to_repo(big_repo.repo_id, branch="main", files={"e.txt": b"echo"}, message="m", author="a")
    push_series(small_repo, 2, size=100)
    fetch_all(big_repo)

    pushed = {**history.blobs, blob_id(b"echo"): b"echo"}
    stats = run_json("musehub_stats")
    assert stats["scope"] == "hub" and stats["repos"] == 2
    assert stats["commits"] == 3 + 2 and stats["snapshots"] == 3 + 2
    assert stats["objects"] == len(pushed) + 2
    assert stats["object_bytes"] == sum(len(raw) for raw in pushed.values()) + 200
    cached = [raw for raw in pushed.values() if len(raw) <= 4096]
    assert stats["cached_objects"] == len(cached) + 2, "blobs up to 4 KiB are cached"
    assert stats["cached_bytes"] == sum(map(len, cached)) + 200
    assert stats["unindexed_objects"] == 0 and stats["index_rows"] == len(pushed) + 2
    assert stats["mpacks_by_kind"]["push"]["count"] == 3
    assert stats["mpacks_by_kind"]["server"]["count"] == 1
    assert stats["mpacks_by_kind"]["fetch"]["count"] == 1
    assert stats["mpacks"] == 5
    assert stats["mpack_bytes"] == sum(MPack.objects.values_list("size_bytes", flat=True))
    assert [r["repo"] for r in stats["biggest_repos"]] == [big_repo.full_name, small_repo.full_name]
    assert stats["biggest_repos"][0]["objects"] == len(pushed)

    one = run_json("musehub_stats", "--repo", small_repo.full_name)
    assert one["scope"] == small_repo.full_name
    assert one["objects"] == 2 and one["object_bytes"] == 200 and one["commits"] == 2
    assert one["mpacks_by_kind"] == {"push": {"count": 2, "bytes": one["mpack_bytes"]}}
    text = run("musehub_stats")
    assert f"Objects: {len(pushed) + 2}" in text and big_repo.full_name in text


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_prints_json_for_scripts(name, db):
    assert isinstance(run_json(name), dict)


@pytest.mark.parametrize("name", ("musehub_fsck", "musehub_repack", "musehub_stats"))
def test_repo_options_name_what_is_wrong(name, db):
    error, _ = run_failing(name, "--repo", "ghost/none")
    assert "There is no repository ghost/none" in str(error)


def test_progress_bars_go_to_a_terminal_stderr_and_only_there(backend):
    repo = make_repo()
    push_series(repo, 2)
    shown = Terminal()
    call_command("musehub_fsck", stdout=StringIO(), stderr=shown)
    assert "fsck packs" in shown.getvalue()
    silenced = Terminal()
    call_command("musehub_fsck", "--no-progress", stdout=StringIO(), stderr=silenced)
    assert silenced.getvalue() == ""
    piped = StringIO()
    call_command("musehub_fsck", stdout=StringIO(), stderr=piped)
    assert piped.getvalue() == ""
    command = MaintenanceCommand(stdout=StringIO(), stderr=StringIO())
    assert command.progress({"no_progress": False}) is no_progress
