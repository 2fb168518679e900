"""Server-side commits: write files to a branch without a client."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction

from musehub_core.ids import blob_id, compute_snapshot_id
from musehub_core.manifests import refuse_unsafe_paths, snapshot_dict, validate_path
from musehub_core.records import commit_record
from repos.manifests import load_manifest
from repos.models import Branch, CommitGraph, ObjectRef
from repos.selectors import repo_by_id
from repos.services.history import record_history, seen_by_repo
from repos.services.repos import move_branch, validate_branch_name
from repos.storage.writer import pack_blobs


def commit_files_to_repo(
    repo_id: str,
    *,
    branch: str,
    files: Mapping[str, bytes | None],
    message: str,
    author: str,
) -> str:
    """Commit *files* ({path: bytes}, or None to delete a path) on top of *branch* and return the commit id.

    The parent is the branch's current head (the branch is created when
    missing). New blobs go into one new mpack; the snapshot and commit go to the
    database only. Raises NonFastForward if the branch moves meanwhile.
    """
    repo = repo_by_id(repo_id)
    validate_branch_name(branch)
    parent = Branch.objects.filter(repo=repo, name=branch).values_list("head_commit_id", flat=True).first()
    manifest: dict[str, str] = {}
    if parent:
        snapshot_id = CommitGraph.objects.filter(commit_id=parent).values_list("snapshot_id", flat=True).first()
        manifest = load_manifest(snapshot_id) if snapshot_id else {}
    contents: dict[str, bytes] = {}
    refuse_unsafe_paths((p for p, content in files.items() if content is not None), "files")
    for path, content in files.items():
        validate_path(path, "files")
        if content is None:
            manifest.pop(path, None)
        else:
            oid = blob_id(content)
            manifest[path] = oid
            contents[oid] = content
    known = seen_by_repo(ObjectRef, repo, "object_id", contents)
    mpack, stored = pack_blobs({oid: raw for oid, raw in contents.items() if oid not in known})

    snapshot = snapshot_dict(compute_snapshot_id(manifest), manifest)
    commit = commit_record(
        parent_ids=[parent] if parent else [],
        snapshot_id=snapshot["snapshot_id"],
        branch=branch,
        message=message,
        author=author,
        metadata={},
    )
    with transaction.atomic():
        record_history(repo, commits=[commit], snapshots=[snapshot], blobs=stored, mpack=mpack)
        move_branch(repo, branch, commit["commit_id"])
    return commit["commit_id"]
