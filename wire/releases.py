"""MWP endpoints of what the muse CLI publishes: releases and tags (docs/wire.md §4; msgpack replies, bare-hex ids).

| method and path | body → reply |
|---|---|
| ``POST {repo}/releases`` | a ReleaseDict (JSON, as ``muse release push`` sends it, or msgpack) → 201 the release |
| ``GET {repo}/releases?channel=&include_drafts=1`` | → ``{releases: [ReleaseDict, ...]}``, newest first |
| ``DELETE {repo}/releases/{tag}`` | → ``{retracted: tag}`` |
| ``POST {repo}/tags`` | ``{tags: [{tag, commit_id, created_at, ...}]}`` → ``{stored, skipped}`` |

The ReleaseDict fields the hub knows become columns (``body`` is the release
notes); every other field (``changelog``, ``agent_id``, ``model_id``,
``gpg_signature``, ...) is kept as sent and returned. ``release_id`` and
``repo_id`` are the hub's own. Drafts are listed only for callers who may write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from hubhttp.views import validated
from musehub_core.errors import BadRequest
from musehub_core.ids import to_wire_hex
from repos import selectors
from repos.access import repo_for
from repos.models import Release, ReleaseChannel, Repo, Role
from repos.services.releases import (
    NOTES_MAX,
    TagInput,
    create_release,
    delete_release,
    push_tags,
    sees_drafts,
)
from wire.views import MwpView

# ReleaseDict fields the hub assigns itself rather than keeping the client's.
HUB_FIELDS = ("release_id", "repo_id")


class ReleaseRequest(serializers.Serializer):
    """The known fields of the CLI's ReleaseDict; the others are kept verbatim."""

    tag = serializers.CharField(max_length=255, trim_whitespace=False)
    commit_id = serializers.CharField(max_length=71)
    snapshot_id = serializers.CharField(max_length=71, allow_blank=True, default="")
    title = serializers.CharField(max_length=300, allow_blank=True, default="", trim_whitespace=False)
    body = serializers.CharField(max_length=NOTES_MAX, allow_blank=True, default="", trim_whitespace=False)
    channel = serializers.ChoiceField(choices=ReleaseChannel.choices, default=ReleaseChannel.STABLE)
    is_draft = serializers.BooleanField(default=False)
    semver = serializers.DictField(required=False)
    created_at = serializers.CharField(max_length=64, allow_blank=True, default="")


KNOWN_FIELDS = frozenset(ReleaseRequest().fields)


class ReleaseResponse(ReleaseRequest):
    """A release as MWP answers it: the ReleaseDict, with the hub's ids and the client's other fields."""

    release_id = serializers.CharField()
    repo_id = serializers.CharField()


class ReleaseListResponse(serializers.Serializer):
    releases = ReleaseResponse(many=True)


class RetractResponse(serializers.Serializer):
    retracted = serializers.CharField()


class WireTagSerializer(serializers.Serializer):
    tag = serializers.CharField()
    commit_id = serializers.CharField()
    created_at = serializers.CharField(required=False)


class TagsRequest(serializers.Serializer):
    tags = WireTagSerializer(many=True)


class TagsResponse(serializers.Serializer):
    stored = serializers.IntegerField()
    skipped = serializers.IntegerField()


class ReleaseListQuery(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ReleaseChannel.choices, required=False)
    include_drafts = serializers.BooleanField(default=False)


def stated_time(value: str, where: str) -> dt.datetime | None:
    """Return the ISO-8601 time *value* (UTC when it names no zone), None when blank; BadRequest otherwise."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{where} must be an ISO-8601 time, got {value!r:.64}.") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def release_to_wire(release: Release, repo: Repo) -> dict[str, Any]:
    """Return *release* as the CLI's ReleaseDict: its other fields first, the hub's columns over them."""
    return {
        **release.metadata,
        "release_id": str(release.release_id),
        "repo_id": repo.repo_id,
        "tag": release.tag,
        "semver": release.semver,
        "channel": release.channel,
        "commit_id": to_wire_hex(release.commit_id),
        "snapshot_id": to_wire_hex(release.snapshot_id),
        "title": release.title,
        "body": release.notes,
        "is_draft": release.is_draft,
        "created_at": release.created_at.isoformat(),
    }


def parse_tags(body: dict) -> list[TagInput]:
    """Return the tags of a ``POST {repo}/tags`` body (the CLI's WireTag dicts)."""
    listed = body.get("tags", [])
    if not isinstance(listed, list):
        raise BadRequest("tags must be a list of {tag, commit_id, created_at} maps.")
    tags = []
    for index, item in enumerate(listed):
        if not isinstance(item, dict):
            raise BadRequest(f"tags[{index}] must be a map {{tag, commit_id, created_at}}.")
        created = item.get("created_at") or ""
        if not isinstance(created, str):
            raise BadRequest(f"tags[{index}].created_at must be an ISO-8601 time.")
        tags.append(
            TagInput(
                name=item.get("tag"),
                commit_id=item.get("commit_id"),
                created_at=stated_time(created, f"tags[{index}].created_at"),
            )
        )
    return tags


class ReleasesView(MwpView):
    @extend_schema(
        parameters=[
            OpenApiParameter("channel", str, enum=ReleaseChannel.values),
            OpenApiParameter("include_drafts", bool, description="Drafts too (callers who may write)."),
        ],
        responses=ReleaseListResponse,
        summary="MWP: releases of a repository, newest first (muse release list --remote)",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        query = validated(ReleaseListQuery, request.query_params.dict())
        drafts = query["include_drafts"] and sees_drafts(request.user, repo)
        rows = selectors.releases_of(repo, channel=query.get("channel"), include_drafts=drafts)
        return Response({"releases": [release_to_wire(r, repo) for r in rows]})

    @extend_schema(
        request=ReleaseRequest,
        responses={201: ReleaseResponse},
        summary="MWP: create a release of a commit (muse release push)",
    )
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.WRITE)
        body = self.body(request)
        fields = validated(ReleaseRequest, body)
        release = create_release(
            repo,
            tag=fields["tag"],
            commit_id=fields["commit_id"],
            snapshot_id=fields["snapshot_id"],
            title=fields["title"],
            notes=fields["body"],
            channel=fields["channel"],
            is_draft=fields["is_draft"],
            semver=fields.get("semver"),
            created_at=stated_time(fields["created_at"], "created_at"),
            metadata={k: v for k, v in body.items() if k not in KNOWN_FIELDS and k not in HUB_FIELDS},
            acting_user=request.user,
        )
        return Response(release_to_wire(release, repo), status=status.HTTP_201_CREATED)


class ReleaseView(MwpView):
    @extend_schema(
        responses=RetractResponse, summary="MWP: retract a release (muse release delete --remote); its commit stays"
    )
    def delete(self, request, owner: str, slug: str, tag: str):
        repo = repo_for(request.user, owner, slug, Role.WRITE)
        release = delete_release(repo, tag=tag, acting_user=request.user)
        return Response({"retracted": release.tag})


class TagsView(MwpView):
    @extend_schema(
        request=TagsRequest,
        responses=TagsResponse,
        summary="MWP: add tags to commits (push_tags); a tag the repository has is skipped",
    )
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.WRITE)
        result = push_tags(repo, tags=parse_tags(self.body(request)), acting_user=request.user)
        return Response({"stored": result.stored, "skipped": result.skipped})
