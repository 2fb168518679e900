"""What gets published: releases of a commit, tags on commits, and Muse domain manifests.

- A **release** names one commit of a repository with a version tag (``v1.2.0``),
  a title, notes, a channel and a semver; the fields a client sends beyond those
  (the muse CLI's changelog, agent and model ids, signature, ...) are kept in
  ``metadata`` and returned unchanged. The commit must be one the repository
  holds; a tag names one release per repository.
- A **tag** is a label on a commit (muse's semantic tags, ``stage:master``); one
  label may name many commits, and pushing a tag again changes nothing.
- A **domain** is the manifest of a Muse domain plugin published as
  ``@publisher/slug``; publishing again needs a higher version (or the same
  manifest again, which changes nothing).

Writers need the write role on the repository (checked here as well as in the
views); readers see drafts only when they may write.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from musehub_core.errors import (
    AuthenticationRequired,
    BadRequest,
    Conflict,
    InvalidRelease,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    UnknownCommit,
)
from musehub_core.ids import from_wire_hex, hex_of, is_hex, is_id
from repos.access import RANKS, User, require, role_of
from repos.bulk import insert_ignore
from repos.models import CommitGraph, CommitRef, Domain, Release, ReleaseChannel, Repo, Role, Tag
from repos.services.repos import DOMAIN_NAME

LABEL_MAX = 255
TITLE_MAX = 300
NOTES_MAX = 1_000_000
MAX_TAGS_PER_CALL = 10_000
METADATA_MAX_BYTES = 4 * 1024 * 1024
CAPABILITIES_MAX_BYTES = 64 * 1024

SEMVER = re.compile(
    r"v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


# --- checks shared by releases, tags and domains --------------------------------------------------


def _text(value: object, where: str, limit: int, *, required: bool = False) -> str:
    """Return *value* when it is a string the database can store (no NUL, valid UTF-8) of at most *limit* characters."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string.")
    if required and not value:
        raise BadRequest(f"{where} must not be empty.")
    if len(value) > limit:
        raise BadRequest(f"{where} is longer than {limit} characters.")
    if "\0" in value:
        raise BadRequest(f"{where} contains NUL.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{where} is not valid Unicode text.") from None
    return value


def _label(value: object, where: str) -> str:
    """Return a tag name: 1-255 printable characters, no spaces at either end."""
    label = _text(value, where, LABEL_MAX, required=True)
    if not label.isprintable() or label != label.strip():
        raise BadRequest(f"{where} {label!r:.80} holds control characters or spaces at an end.")
    return label


def plain_json(value: object, where: str, limit: int) -> Any:
    """Return *value* when it is plain JSON any database stores (no binary, NaN or NUL) of at most *limit* bytes."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError) as exc:  # bytes, NaN, a lone surrogate
        raise BadRequest(f"{where} must hold JSON values only (no binary, NaN or broken text): {exc}.") from None
    if "\0" in text or "\\u0000" in text:
        raise BadRequest(f"{where} contains NUL.")
    if size > limit:
        raise PayloadTooLarge(f"{where} is {size} bytes as JSON; this hub keeps at most {limit}.")
    return value


def _commit_id(value: object, where: str) -> str:
    if not (is_hex(value) or is_id(value)):
        raise BadRequest(
            f"{where} must be a commit id (64 hex digits, optionally 'sha256:'-prefixed), got {value!r:.80}."
        )
    return from_wire_hex(value)


def snapshots_of_held(repo: Repo, commit_ids: Sequence[str]) -> dict[str, str]:
    """Return {commit_id: snapshot_id} for those of *commit_ids* (stored form) that *repo* holds, in one query."""
    held = CommitRef.objects.filter(repo=repo, commit_id__in=list(dict.fromkeys(commit_ids))).values("commit_id")
    return dict(CommitGraph.objects.filter(commit_id__in=held).values_list("commit_id", "snapshot_id"))


def parse_semver(text: object) -> dict[str, Any] | None:
    """Return ``{major, minor, patch, pre, build}`` of a semver string (``v1.2.3-beta.1+b7``), or None."""
    match = SEMVER.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    return {
        "major": int(match["major"]),
        "minor": int(match["minor"]),
        "patch": int(match["patch"]),
        "pre": match["pre"] or "",
        "build": match["build"] or "",
    }


def semver_key(version: Mapping[str, Any]) -> tuple:
    """Return a sort key giving semver precedence (a pre-release sorts before its release; build is ignored)."""
    pre = version.get("pre") or ""
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    return (version["major"], version["minor"], version["patch"], 0 if pre else 1, parts)


def _semver(value: object, tag: str) -> dict[str, Any]:
    if value is None:
        return parse_semver(tag) or {"major": 0, "minor": 0, "patch": 0, "pre": "", "build": ""}
    if not isinstance(value, Mapping):
        raise BadRequest("semver must be a map {major, minor, patch, pre, build}.")
    result: dict[str, Any] = {}
    for key in ("major", "minor", "patch"):
        number = value.get(key, 0)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 2**63:
            raise BadRequest(f"semver.{key} must be a whole number from 0.")
        result[key] = number
    for key in ("pre", "build"):
        result[key] = _text(value.get(key) or "", f"semver.{key}", LABEL_MAX)
    return result


def sees_drafts(user: User | None, repo: Repo) -> bool:
    """Return True when *user* may see *repo*'s draft releases (the write role)."""
    return RANKS[role_of(user, repo)] >= RANKS[Role.WRITE]


# --- releases -------------------------------------------------------------------------------------


def create_release(
    repo: Repo,
    *,
    tag: str,
    commit_id: str,
    acting_user: User | None,
    title: str = "",
    notes: str = "",
    channel: str = ReleaseChannel.STABLE,
    is_draft: bool = False,
    semver: Mapping[str, Any] | None = None,
    created_at: dt.datetime | None = None,
    snapshot_id: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> Release:
    """Record release *tag* of *commit_id* in *repo* and return it.

    Needs the write role. Raises UnknownCommit (422) when *repo* does not hold
    the commit, InvalidRelease (422) when *snapshot_id* is not that commit's
    snapshot, Conflict (409) when *repo* already has a release *tag*, BadRequest
    for a malformed field. *semver* defaults to the tag parsed as semver,
    *created_at* to now.
    """
    require(acting_user, repo, Role.WRITE)
    tag = _label(tag, "tag")
    commit = _commit_id(commit_id, "commit_id")
    if channel not in ReleaseChannel.values:
        raise BadRequest(f"channel must be one of {', '.join(ReleaseChannel.values)}.")
    version = _semver(semver, tag)
    extra = plain_json(dict(metadata or {}), "The release's other fields", METADATA_MAX_BYTES)
    snapshot = snapshots_of_held(repo, [commit]).get(commit)
    if snapshot is None:
        raise UnknownCommit(
            f"Release {tag!r:.80} names commit {hex_of(commit)}, which {repo.full_name} does not hold; "
            "push the commit first.",
            commit_id=hex_of(commit),
        )
    if snapshot_id and (not (is_hex(snapshot_id) or is_id(snapshot_id)) or from_wire_hex(snapshot_id) != snapshot):
        raise InvalidRelease(
            f"Release {tag!r:.80}: snapshot_id {snapshot_id!r:.80} is not the snapshot of commit {hex_of(commit)} "
            f"({hex_of(snapshot)}).",
            commit_id=hex_of(commit),
        )
    release = Release(
        repo=repo,
        tag=tag,
        commit_id=commit,
        snapshot_id=snapshot,
        title=_text(title, "title", TITLE_MAX),
        notes=_text(notes, "body", NOTES_MAX),
        channel=channel,
        is_draft=bool(is_draft),
        semver=version,
        metadata=extra,
        author=acting_user.get_username() if acting_user is not None else "",
        created_at=created_at or dt.datetime.now(dt.UTC),
    )
    try:
        with transaction.atomic():
            release.save(force_insert=True)
    except IntegrityError:
        raise Conflict(
            f"{repo.full_name} already has a release {tag!r:.80}; delete it first to release that tag again.", tag=tag
        ) from None
    return release


def delete_release(repo: Repo, *, tag: str, acting_user: User | None) -> Release:
    """Delete *repo*'s release *tag* (drafts included) and return what it was; its commit stays. Needs write."""
    require(acting_user, repo, Role.WRITE)
    release = Release.objects.filter(repo=repo, tag=tag).first()
    if release is None:
        raise NotFound(f"No release {tag!r:.120} in {repo.full_name}.")
    Release.objects.filter(pk=release.pk).delete()
    return release


# --- tags -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TagInput:
    name: str
    commit_id: str
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class TagsPushed:
    stored: int  # tags this call added
    skipped: int  # tags the repository already had


def push_tags(repo: Repo, *, tags: Sequence[TagInput], acting_user: User | None) -> TagsPushed:
    """Add *tags* to *repo*; a tag it already has (same name, same commit) is skipped. Needs write.

    All or nothing: a malformed tag is BadRequest and a commit *repo* does not
    hold is UnknownCommit (422, naming it), and then no tag is stored.
    """
    require(acting_user, repo, Role.WRITE)
    if len(tags) > MAX_TAGS_PER_CALL:
        raise PayloadTooLarge(f"Send at most {MAX_TAGS_PER_CALL} tags per call, not {len(tags)}.")
    now = dt.datetime.now(dt.UTC)
    wanted: dict[tuple[str, str], dt.datetime] = {}
    for index, tag in enumerate(tags):
        key = (_label(tag.name, f"tags[{index}].tag"), _commit_id(tag.commit_id, f"tags[{index}].commit_id"))
        wanted.setdefault(key, tag.created_at or now)
    held = snapshots_of_held(repo, [commit for _, commit in wanted])
    unknown = sorted({commit for _, commit in wanted if commit not in held})
    if unknown:
        shown = ", ".join(hex_of(c) for c in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise UnknownCommit(
            f"{repo.full_name} does not hold commit {shown}; push the commits before their tags. No tag was stored.",
            commit_ids=[hex_of(c) for c in unknown[:100]],
        )
    rows = [(repo.pk, name, commit, created, now) for (name, commit), created in wanted.items()]
    with transaction.atomic():
        stored = insert_ignore(Tag, ["repo", "name", "commit_id", "created_at", "pushed_at"], rows) if rows else 0
    return TagsPushed(stored=stored, skipped=len(tags) - stored)


# --- published domains ----------------------------------------------------------------------------


def manifest_hash(capabilities: Mapping[str, Any]) -> str:
    """Return the SHA-256 (hex) of *capabilities* as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(capabilities, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _capabilities(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequest(
            "capabilities must be a map {dimensions, artifact_types, merge_semantics, supported_commands}."
        )
    capabilities = dict(plain_json(dict(value), "capabilities", CAPABILITIES_MAX_BYTES))
    dimensions = capabilities.get("dimensions", [])
    if not isinstance(dimensions, list) or not all(
        isinstance(d, Mapping) and isinstance(d.get("name"), str) and isinstance(d.get("description", ""), str)
        for d in dimensions
    ):
        raise BadRequest("capabilities.dimensions must be a list of {name, description} maps.")
    for key in ("artifact_types", "supported_commands"):
        listed = capabilities.get(key, [])
        if not isinstance(listed, list) or not all(isinstance(item, str) for item in listed):
            raise BadRequest(f"capabilities.{key} must be a list of strings.")
    if not isinstance(capabilities.get("merge_semantics", ""), str):
        raise BadRequest("capabilities.merge_semantics must be a string.")
    return capabilities


@dataclass(frozen=True)
class Publication:
    domain: Domain
    created: bool  # a new @publisher/slug
    changed: bool  # False: the same version and manifest were published already


def publish_domain(
    *,
    acting_user: User | None,
    author_slug: str,
    slug: str,
    display_name: str,
    version: str,
    capabilities: Mapping[str, Any],
    description: str = "",
    viewer_type: str = "",
) -> Publication:
    """Publish (or republish) domain ``@author_slug/slug`` and return what happened.

    The publisher must be signed in as *author_slug* (superusers may publish for
    anyone). A new name is created; a higher *version* replaces the manifest;
    the same version with the same manifest changes nothing; anything else is a
    Conflict (409) asking for a version bump.
    """
    if acting_user is None or not acting_user.is_authenticated:
        raise AuthenticationRequired("Publishing a domain needs a token: send 'Authorization: Bearer <token>'.")
    username = acting_user.get_username()
    author_slug = _text(author_slug, "author_slug", 150, required=True).removeprefix("@")
    if author_slug != username and not acting_user.is_superuser:
        raise PermissionDenied(f"You are signed in as {username!r}; publish under your own name (--author {username}).")
    if not isinstance(slug, str) or not DOMAIN_NAME.fullmatch(slug):
        raise BadRequest(f"slug must be a lowercase name of at most 32 letters, digits, '-' or '_', got {slug!r:.40}.")
    semver = parse_semver(version)
    if semver is None:
        raise BadRequest(f"version must be semver (MAJOR.MINOR.PATCH[-pre][+build]), got {version!r:.40}.")
    fields: dict[str, Any] = {
        "display_name": _text(display_name, "display_name", 200, required=True),
        "description": _text(description, "description", 10_000),
        "viewer_type": _text(viewer_type, "viewer_type", 64),
        "version": version,
        "capabilities": _capabilities(capabilities),
    }
    fields["manifest_hash"] = manifest_hash(fields["capabilities"])
    scoped = f"@{author_slug}/{slug}"
    with transaction.atomic():
        current = Domain.objects.select_for_update().filter(author_slug=author_slug, slug=slug).first()
        if current is None:
            try:
                with transaction.atomic():
                    domain = Domain.objects.create(author_slug=author_slug, slug=slug, publisher=acting_user, **fields)
            except IntegrityError:
                raise Conflict(f"{scoped} was published by another request just now; publish again.") from None
            return Publication(domain, created=True, changed=True)
        if all(getattr(current, name) == value for name, value in fields.items()):
            return Publication(current, created=False, changed=False)
        previous = parse_semver(current.version)
        if previous is not None and semver_key(semver) <= semver_key(previous):
            raise Conflict(
                f"Domain {scoped} is already published at version {current.version}; bump the version "
                f"(above {current.version}) to publish a change.",
                version=current.version,
            )
        for name, value in fields.items():
            setattr(current, name, value)
        current.publisher = acting_user
        current.save()
        return Publication(current, created=False, changed=True)
