"""The client's `merge` against a live hub: clean merges, the resolve flow of a conflicting proposal, --abort."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests
from django.db import transaction

from musehub_client.http import EXIT_CONFLICT, EXIT_NOT_FOUND
from musehub_client.merging import MergeRecord, has_markers, merge_text
from musehub_client.state import STATE_DIR, State
from repos.manifests import load_manifest
from repos.models import CommitGraph, Repo
from repos.selectors import branch_heads
from repos.services.commits import commit_files_to_repo
from repos.services.repos import move_branch
from tests.clientkit import run, tree_of
from tests.factories import make_user, uid
from tests.httpkit import token_for

pytestmark = pytest.mark.django_db(transaction=True)

SONG_MAIN = b"MThd\x00\x00\x00\x06" + os.urandom(3000)
SONG_FEATURE = b"MThd\x00\x00\x00\x06" + os.urandom(3000)
SONG_BASE = b"MThd\x00\x00\x00\x06" + os.urandom(3000)


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


class Hub:
    """One repository on the live hub, driven through the client and the REST API as alice."""

    def __init__(self, live_server, tmp_path: Path) -> None:
        self.user = make_user(f"alice-{uid()}")
        self.token = token_for(self.user)
        self.slug = f"songs-{uid()}"
        self.url = f"{live_server.url}/{self.user.username}/{self.slug}"
        self.api = f"{live_server.url}/api/v1/repos/{self.user.username}/{self.slug}"
        self.tmp = tmp_path

    @property
    def repo(self) -> Repo:
        return Repo.objects.get(owner=self.user.username, slug=self.slug)

    def heads(self) -> dict[str, str]:
        return branch_heads(self.repo)

    def tree(self, commit_id: str) -> dict[str, str]:
        return load_manifest(CommitGraph.objects.get(commit_id=commit_id).snapshot_id)

    def parents(self, commit_id: str) -> list[str]:
        return list(CommitGraph.objects.get(commit_id=commit_id).parent_ids)

    def fork(self, branch: str, files: dict[str, bytes | None]) -> str:
        """Start *branch* at main's head and commit *files* on it on the hub."""
        with transaction.atomic():
            move_branch(self.repo, branch, self.heads()["main"])
        return commit_files_to_repo(
            self.repo.repo_id, branch=branch, files=files, message=f"work on {branch}", author="bob"
        )

    def rest(self, method: str, suffix: str, body: dict | None = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.api}/{suffix}",
            data=json.dumps(body) if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=30,
        )

    def client(self, *argv: str) -> tuple[int, str, str]:
        return run(*argv, token=self.token)


@pytest.fixture
def hub(live_server, tmp_path) -> Hub:
    return Hub(live_server, tmp_path)


def first_push(hub: Hub, files: dict[str, bytes]) -> Path:
    folder = hub.tmp / "main"
    write_tree(folder, files)
    code, _, err = hub.client("push", str(folder), hub.url, "-m", "first")
    assert code == 0, err
    return folder


def test_a_proposal_that_conflicts_is_resolved_with_merge_then_push_and_merges_on_the_hub(hub, backend):
    main = first_push(
        hub, {"lyrics.txt": b"verse\nchorus\n", "song.mid": SONG_BASE, "notes.txt": b"a\nb\nc\n", "old.txt": b"old\n"}
    )
    feature_files = {"lyrics.txt": b"verse\nfeature chorus\n", "song.mid": SONG_FEATURE, "notes.txt": b"A\nb\nc\n"}
    hub.fork("feature", {**feature_files, "feat.txt": b"f\n"})
    write_tree(main, {"lyrics.txt": b"verse\nmain chorus\n", "song.mid": SONG_MAIN, "main.txt": b"m\n"})
    (main / "notes.txt").write_bytes(b"a\nb\nC\n")
    (main / "old.txt").unlink()
    assert hub.client("push", str(main), hub.url, "-m", "main moves on")[0] == 0
    opened = hub.rest("POST", "proposals", {"title": "Feature", "from_branch": "feature", "to_branch": "main"})
    assert opened.status_code == 201, opened.text
    number = opened.json()["number"]
    refused = hub.rest("POST", f"proposals/{number}/merge", {"strategy": "merge"})
    assert refused.status_code == 409
    assert {c["path"] for c in refused.json()["conflicts"]} == {"lyrics.txt", "notes.txt", "song.mid"}
    assert "musehub merge" in refused.json()["detail"], "the hub's message names the command that resolves it"

    work = hub.tmp / "feature"
    assert hub.client("clone", hub.url, str(work), "--branch", "feature")[0] == 0
    feature_head = hub.heads()["feature"]
    code, out, err = hub.client("merge", "main", str(work))
    assert code == EXIT_CONFLICT, err
    assert "lyrics.txt" in out and "song.mid" in out and "--abort" in out
    assert "notes.txt: changed on both sides in different lines" in out

    tree = tree_of(work)
    assert tree["lyrics.txt"] == (
        b"verse\n<<<<<<< ours (feature)\nfeature chorus\n=======\nmain chorus\n>>>>>>> theirs (main)\n"
    ), "merged line by line: only the line both sides changed is marked, ours first"
    assert tree["song.mid"] == SONG_FEATURE and tree["song.mid.theirs"] == SONG_MAIN, "binary: theirs beside ours"
    assert tree["main.txt"] == b"m\n" and tree["feat.txt"] == b"f\n", "what merged cleanly is written"
    assert "old.txt" not in tree, "main's deletion is merged"
    assert tree["notes.txt"] == b"A\nb\nC\n", "changes to different lines merge with no markers"
    assert State.load(work).head == feature_head, "nothing is committed yet"

    code, _, err = hub.client("pull", str(work))
    assert code == EXIT_CONFLICT and "merge --abort" in err, "pull would lose the merge"
    code, _, err = hub.client("push", str(work), hub.url)
    assert code == EXIT_CONFLICT, err
    assert "lyrics.txt still holds conflict markers" in err and "song.mid.theirs is still there" in err
    assert "notes.txt" not in err, "a file without markers is resolved"
    assert "merge --abort" in err
    assert hub.heads()["feature"] == feature_head, "a refused push sends nothing"

    (work / "lyrics.txt").write_bytes(b"verse\nfeature and main chorus\n")
    os.replace(work / "song.mid.theirs", work / "song.mid")
    code, out, err = hub.client("push", str(work), hub.url)
    assert code == 0, err
    merged = hub.heads()["feature"]
    assert hub.parents(merged) == [feature_head, hub.heads()["main"]], "a two-parent commit: ours, then theirs"
    assert not MergeRecord.path(work).exists() and not (work / STATE_DIR / "merge-ours").exists()
    assert State.load(work).head == merged

    done = hub.rest("POST", f"proposals/{number}/merge", {"strategy": "merge"})
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "merged"
    check = hub.tmp / "check"
    assert hub.client("clone", hub.url, str(check))[0] == 0
    assert tree_of(check) == tree_of(work), "main now holds the resolved tree"
    assert tree_of(check)["lyrics.txt"] == b"verse\nfeature and main chorus\n"


def test_a_clean_merge_makes_the_merge_commit_locally_and_push_sends_it(hub):
    main = first_push(hub, {"a.txt": b"a\n", "b.txt": b"b\n", "song.mid": SONG_BASE})
    feature_head = hub.fork("feature", {"b.txt": b"b from feature\n", "song.mid": SONG_FEATURE, "f.txt": b"f\n"})
    (main / "a.txt").write_bytes(b"a from main\n")
    assert hub.client("push", str(main), hub.url, "-m", "main moves on")[0] == 0
    main_head = hub.heads()["main"]
    opened = hub.rest("POST", "proposals", {"title": "Feature", "from_branch": "feature", "to_branch": "main"})
    number = opened.json()["number"]

    # In the folder that pushed main: its packs hold none of this history, the hub's compare names the base.
    code, out, err = hub.client("merge", "feature", str(main))
    assert code == 0, err
    record = MergeRecord.load(main)
    assert record is not None and record.commit is not None and record.conflicts == []
    assert record.commit["parent_ids"] == [main_head, feature_head]
    assert record.commit["author"] == hub.user.username, "authored as the token's user, like the hub's merges"
    assert record.commit["commit_id"][7:15] in out, "the summary names the local merge commit"
    assert tree_of(main) == {
        "a.txt": b"a from main\n",
        "b.txt": b"b from feature\n",
        "song.mid": SONG_FEATURE,
        "f.txt": b"f\n",
    }
    assert hub.heads()["main"] == main_head, "merge itself sends nothing"

    code, _, err = hub.client("push", str(main), hub.url)
    assert code == 0, err
    assert hub.heads()["main"] == record.commit["commit_id"], "the commit made by merge is the one pushed"
    assert hub.tree(record.commit["commit_id"]) == State.load(main).manifest
    done = hub.rest("POST", f"proposals/{number}/merge", {"strategy": "merge"})
    assert done.status_code == 200 and done.json()["state"] == "merged"
    assert hub.heads()["main"] == record.commit["commit_id"], "main already holds feature: no new commit"

    code, out, _ = hub.client("merge", "feature", str(main))
    assert code == 0 and "already up to date" in out


def test_merge_abort_puts_every_file_back_and_forgets_the_merge(hub):
    main = first_push(
        hub, {"lyrics.txt": b"one\n", "song.mid": SONG_BASE, "gone.mid": SONG_BASE + b"x", "extra.txt": b"e\n"}
    )
    hub.fork(
        "feature",
        {"lyrics.txt": b"two\n", "song.mid": None, "gone.mid": SONG_FEATURE, "new.txt": b"n\n", "extra.txt": b"E\n"},
    )
    write_tree(main, {"lyrics.txt": b"three\n", "song.mid": SONG_MAIN})
    (main / "gone.mid").unlink()
    assert hub.client("push", str(main), hub.url)[0] == 0
    (main / "extra.txt").unlink()  # deleted here, not pushed: the merge writes feature's version
    before = tree_of(main)

    code, out, err = hub.client("merge", "feature", str(main))
    assert code == EXIT_CONFLICT, err
    tree = tree_of(main)
    assert has_markers(tree["lyrics.txt"])
    assert "song.mid" not in tree and tree["song.mid.ours"] == SONG_MAIN, "changed here, deleted there: ours aside"
    assert "gone.mid" not in tree and tree["gone.mid.theirs"] == SONG_FEATURE, "deleted here, changed there"
    assert tree["new.txt"] == b"n\n" and tree["extra.txt"] == b"E\n"
    (main / "lyrics.txt").write_bytes(b"half-edited\n")

    code, out, err = hub.client("merge", "--abort", str(main))
    assert code == 0, err
    assert tree_of(main) == before, "the folder is exactly as before the merge"
    assert not MergeRecord.path(main).exists()
    code, out, _ = hub.client("push", str(main), hub.url)
    assert code == 0 and "pushed 1 commit" in out, "the folder is back where it was: extra.txt deleted"
    assert "extra.txt" not in hub.tree(hub.heads()["main"])


def test_merge_refuses_what_it_cannot_do_safely(hub):
    main = first_push(hub, {"a.txt": b"a\n", "b.txt": b"b\n"})
    hub.fork("feature", {"a.txt": b"a from feature\n"})
    code, _, err = hub.client("merge", "nope", str(main))
    assert code == EXIT_NOT_FOUND and "nope" in err

    (main / "a.txt").write_bytes(b"local edit\n")
    code, _, err = hub.client("merge", "feature", str(main))
    assert code == EXIT_CONFLICT and "a.txt" in err and "local changes" in err
    assert (main / "a.txt").read_bytes() == b"local edit\n" and not MergeRecord.path(main).exists()
    (main / "a.txt").write_bytes(b"a\n")

    commit_files_to_repo(hub.repo.repo_id, branch="main", files={"c.txt": b"c\n"}, message="elsewhere", author="x")
    code, _, err = hub.client("merge", "feature", str(main))
    assert code == EXIT_CONFLICT and "pull" in err, "main moved on the hub: pull first"
    assert hub.client("pull", str(main))[0] == 0
    code, _, err = hub.client("merge", "feature", str(main))
    assert code == 0, err
    code, _, err = hub.client("merge", "feature", str(main))
    assert code == EXIT_CONFLICT and "--abort" in err, "one merge at a time"


def test_blobs_the_fetch_pack_leaves_out_come_from_unchanged_files_or_a_full_download(hub):
    shared = os.urandom(5000)
    main = first_push(hub, {"x.bin": shared, "y.bin": SONG_BASE, "z.txt": b"z\n"})
    (main / "w.txt").write_bytes(b"w\n")
    assert hub.client("push", str(main), hub.url)[0] == 0  # the merge base: its own pack holds only w.txt
    # feature writes blobs main's first commit already holds: the hub leaves them out of the fetch pack
    hub.fork("feature", {"copy-of-x.bin": shared, "copy-of-y.bin": SONG_BASE})
    (main / "z.txt").write_bytes(b"z from main\n")
    assert hub.client("push", str(main), hub.url)[0] == 0
    (main / "y.bin").write_bytes(b"edited here, not pushed")  # so y's blob is nowhere in the folder

    code, _, err = hub.client("merge", "feature", str(main))
    assert code == 0, err
    tree = tree_of(main)
    assert tree["copy-of-x.bin"] == shared, "copied from the unchanged x.bin"
    assert tree["copy-of-y.bin"] == SONG_BASE, "downloaded: no file here holds it any more"
    assert tree["y.bin"] == b"edited here, not pushed", "a local change the merge does not touch stays"


def test_text_merges_line_by_line_and_marks_only_the_lines_both_sides_changed():
    base = b"intro\nverse\nchorus\nbridge\noutro\n"
    ours = b"INTRO\nverse\nchorus ours\nbridge\noutro\n"
    theirs = b"intro\nverse\nchorus theirs\nbridge\noutro\ncoda\n"
    text, hunks = merge_text(base, ours, theirs, "main", "feature")
    assert hunks == 1
    assert text == (
        b"INTRO\nverse\n<<<<<<< ours (main)\nchorus ours\n=======\nchorus theirs\n>>>>>>> theirs (feature)\n"
        b"bridge\noutro\ncoda\n"
    )
    assert merge_text(base, ours, base, "a", "b") == (ours, 0), "one side changed: that side"
    assert merge_text(base, b"intro\n", b"intro\n", "a", "b") == (b"intro\n", 0), "the same change on both"
    apart, hunks = merge_text(base, ours, b"intro\nverse\nchorus\nbridge\nOUTRO\n", "a", "b")
    assert (apart, hunks) == (b"INTRO\nverse\nchorus ours\nbridge\nOUTRO\n", 0), "changes in different lines"
    added, hunks = merge_text(b"", b"one\n", b"two", "a", "b")
    assert hunks == 1 and added == b"<<<<<<< ours (a)\none\n=======\ntwo\n>>>>>>> theirs (b)\n"
    assert has_markers(added) and not has_markers(apart)


def test_a_file_where_the_other_side_has_a_folder_goes_aside_until_renamed(hub):
    main = first_push(hub, {"a.txt": b"a\n"})
    feature_head = hub.fork("feature", {"docs/readme.txt": b"read me\n"})
    (main / "docs").write_bytes(b"a file named docs\n")
    assert hub.client("push", str(main), hub.url)[0] == 0

    code, out, err = hub.client("merge", "feature", str(main))
    assert code == EXIT_CONFLICT, err
    assert "docs.ours" in out
    tree = tree_of(main)
    assert tree["docs/readme.txt"] == b"read me\n" and tree["docs.ours"] == b"a file named docs\n"
    code, _, err = hub.client("push", str(main), hub.url)
    assert code == EXIT_CONFLICT and "docs.ours is still there" in err

    os.replace(main / "docs.ours", main / "docs.txt")
    code, _, err = hub.client("push", str(main), hub.url)
    assert code == 0, err
    head = hub.heads()["main"]
    assert hub.parents(head)[1] == feature_head
    assert hub.tree(head).keys() == {"a.txt", "docs.txt", "docs/readme.txt"}


def test_texts_changed_in_different_lines_merge_with_nothing_to_resolve(hub):
    main = first_push(hub, {"lyrics.txt": b"one\ntwo\nthree\n"})
    feature_head = hub.fork("feature", {"lyrics.txt": b"ONE\ntwo\nthree\n"})
    (main / "lyrics.txt").write_bytes(b"one\ntwo\nTHREE\n")
    assert hub.client("push", str(main), hub.url)[0] == 0
    main_head = hub.heads()["main"]

    code, out, err = hub.client("merge", "feature", str(main))
    assert code == 0, err
    assert "merged line by line" in out and "lyrics.txt" in out
    assert (main / "lyrics.txt").read_bytes() == b"ONE\ntwo\nTHREE\n"
    assert MergeRecord.load(main).commit is None, "the hub calls it a conflict: no commit until you push"
    code, _, err = hub.client("push", str(main), hub.url)
    assert code == 0, err
    assert hub.parents(hub.heads()["main"]) == [main_head, feature_head]
