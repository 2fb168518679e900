"""The REST API (``/api/v1/repos/…``): create repositories, browse history, manage proposals and collaborators.

Views only coordinate: check access through ``repos.access.repo_for`` (read for
browsing, write for merging), call one selector, read model or service,
serialize. History, trees and diffs come from ``repos.readmodel``, the read
model the web pages answer from too. Every list answers the same paginated
shape ``{count, next, previous, results}`` (``?page=`` and ``?page_size=``, at
most 100; ``count`` is always exact), and every error the one JSON shape
``{error, detail}`` of ``hubhttp.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from hubhttp.codecs import JSONBodyParser, MsgpackParser, MsgpackRenderer
from hubhttp.downloads import raw_file_response
from hubhttp.errors import json_error
from hubhttp.views import validated
from musehub_core.errors import AuthenticationRequired, BadRequest, RefNotFound
from repos import readmodel, selectors
from repos.access import repo_for, reserved_owner_error
from repos.models import Repo, Role
from repos.services import proposals
from repos.services.branches import delete_branch
from repos.services.releases import publish_domain, sees_drafts
from repos.services.repos import (
    create_repo,
    delete_repo,
    remove_collaborator,
    rename_repo,
    set_collaborator,
    update_repo,
)


class ApiView(APIView):
    """Base of the JSON REST API (tokens or an admin session)."""

    renderer_classes = [JSONRenderer, MsgpackRenderer]
    parser_classes = [JSONBodyParser, MsgpackParser]


class ApiPagination(PageNumberPagination):
    page_size = 30
    page_size_query_param = "page_size"
    max_page_size = 100


def paginated_schema(name: str, item, **extra) -> serializers.Serializer:
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item,
            **extra,
        },
    )


class RepoApiView(ApiView):
    """Base of the per-repository REST views: one paginator, one way to answer a page."""

    def paginate(self, request, items: Sequence[Any]) -> tuple[ApiPagination, list[Any]]:
        paginator = ApiPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator, list(page or [])

    @staticmethod
    def page_response(paginator: ApiPagination, results: list[Any], **extra: Any) -> Response:
        response = paginator.get_paginated_response(results)
        response.data.update(extra)
        return response


# --- branches and commits -------------------------------------------------------------------------


class BranchListView(RepoApiView):
    @extend_schema(
        responses=paginated_schema("BranchPage", s.BranchSerializer(many=True)),
        summary="Branches",
        description="Every branch that has a head, by name, each with its head commit.",
        operation_id="repo_branches_list",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        paginator, page = self.paginate(request, selectors.branches_of(repo))
        context = {"repo": repo, "commits": selectors.commits_by_id(b.head_commit_id for b in page)}
        return self.page_response(paginator, s.BranchSerializer(page, many=True, context=context).data)


class BranchDetailView(RepoApiView):
    @extend_schema(
        responses=s.BranchSerializer,
        summary="A branch and its head commit",
        description="Branch names may hold slashes (`feature/x`); the rest of the URL is the name.",
        operation_id="repo_branch_retrieve",
    )
    def get(self, request, owner: str, slug: str, name: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        branch = selectors.branch_by_name(repo, name)
        context = {"repo": repo, "commits": selectors.commits_by_id([branch.head_commit_id])}
        return Response(s.BranchSerializer(branch, context=context).data)

    @extend_schema(
        request=None,
        responses=s.BranchSerializer,
        summary="Delete a branch (not the default one, nor one an open proposal uses); its commits stay",
        description="Needs the write role. 409 `default_branch` for the default branch, 409 `branch_in_use` for a branch an open proposal uses. The branch's commits stay reachable by id.",
        operation_id="repo_branch_destroy",
    )
    def delete(self, request, owner: str, slug: str, name: str):
        repo = repo_for(request.user, owner, slug, Role.WRITE)
        branch = delete_branch(repo, name=name, acting_user=request.user)
        context = {"repo": repo, "commits": selectors.commits_by_id([branch.head_commit_id])}
        return Response(s.BranchSerializer(branch, context=context).data)


class CommitListView(RepoApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("ref", str, description="Branch or commit id (default: the default branch)."),
            OpenApiParameter("path", str, description="Only commits that changed this file or directory."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated_schema("CommitPage", s.CommitSerializer(many=True)),
        summary="Log of a branch or commit, newest first",
        description="The history of a branch or commit, newest first. With `path`, only commits that changed that file or directory against their first parent.",
        operation_id="repo_commits_list",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        ref = request.query_params.get("ref") or ""
        head = selectors.resolve_ref(repo, ref) if ref else _default_head(repo)
        # With a path, the exact count compares every commit once per process; later requests read the log only.
        log = readmodel.CommitLog(head, path=request.query_params.get("path", ""))
        paginator, page = self.paginate(request, log)
        return self.page_response(paginator, s.CommitSerializer(page, many=True).data)


def _default_head(repo: Repo) -> str | None:
    """Return the head of the default branch, or None while the repository is empty."""
    try:
        return selectors.resolve_ref(repo, repo.default_branch)
    except RefNotFound:
        return None


class CommitDetailView(RepoApiView):
    @extend_schema(
        responses=s.CommitDetailSerializer,
        summary="A commit and what it changed against its first parent",
        description="A commit by id (`sha256:…` or bare hex) with the paths it added, modified and removed against its first parent (everything is added for a root commit).",
        operation_id="repo_commit_retrieve",
    )
    def get(self, request, owner: str, slug: str, commit_id: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        commit = selectors.commit_in_repo(repo, commit_id)
        changes = readmodel.commit_diff(commit).changes
        return Response(s.CommitDetailSerializer(commit, context={"changes": changes}).data)


# --- trees, files and comparisons -----------------------------------------------------------------


class TreeView(RepoApiView):
    @extend_schema(
        responses=paginated_schema(
            "TreePage",
            s.TreeEntrySerializer(many=True),
            ref=serializers.CharField(),
            commit_id=serializers.CharField(),
            path=serializers.CharField(),
        ),
        summary="Directory listing at a ref",
        description="The directory `{path}` at branch or commit `{ref}` (`tree/main/src`): sub-directories first, then files with their object id and size. Branch names with slashes are matched longest first.",
        operation_id="repo_tree_retrieve",
    )
    def get(self, request, owner: str, slug: str, spec: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        ref, commit_id, path = selectors.split_ref_path(repo, spec)
        paginator, page = self.paginate(request, readmodel.tree_listing(commit_id, path))
        readmodel.fill_sizes(page)
        data = s.TreeEntrySerializer(page, many=True).data
        return self.page_response(paginator, data, ref=ref, commit_id=commit_id, path=path)


class RawView(RepoApiView):
    """A file's bytes at a ref, streamed and verified against its object id; the object id is the ETag.

    What a download promises (chunks, Range, active types, the raw origin) is in
    ``docs/security.md`` ("Downloads"); the pieces are ``hubhttp.downloads`` and
    ``repos.storage.blobstream``.
    """

    def perform_content_negotiation(self, request, force=False):
        # Any Accept header may ask for a file; errors still answer JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "Range", str, OpenApiParameter.HEADER, description="One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`."
            ),
            OpenApiParameter("If-Range", str, OpenApiParameter.HEADER, description="The ETag the range is for."),
        ],
        responses={(200, "*/*"): OpenApiTypes.BINARY, (206, "*/*"): OpenApiTypes.BINARY, 304: None, 416: None},
        summary="A file's bytes at a ref",
        description="The file's bytes, streamed and verified against its object id, with a guessed Content-Type. "
        "The object id is the ETag: send If-None-Match for a 304. One `Range` is answered 206 (several: the whole "
        "file, 200; past the end: 416). HTML, SVG, XML, JavaScript, PDF and other active types are served as "
        "`text/plain` (or as an attachment) unless the request came to the operator's raw origin "
        "(`MUSEHUB_RAW_URL`). Served with `Content-Security-Policy: sandbox`, so repository content never runs as "
        "part of the hub's site.",
        operation_id="repo_raw_retrieve",
    )
    def get(self, request, owner: str, slug: str, spec: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        _, commit_id, path = selectors.split_ref_path(repo, spec)
        if not path:
            raise BadRequest("raw/ needs a file path after the ref: raw/<ref>/<path>.")
        return raw_file_response(request, readmodel.file_at(commit_id, path), path)


class CompareView(RepoApiView):
    @extend_schema(
        responses=paginated_schema(
            "Comparison",
            s.CommitSerializer(many=True),
            base_commit_id=serializers.CharField(),
            head_commit_id=serializers.CharField(),
            merge_base_commit_id=serializers.CharField(allow_null=True),
            ahead_by=serializers.IntegerField(),
            behind_by=serializers.IntegerField(),
            changes=s.ChangesSerializer(),
        ),
        summary="Commits and changed paths of <head> since it forked from <base>",
        description="`{base}...{head}`: the commits in head and not in base (newest first), how far head is ahead and behind, their merge base, and the paths head changed since the fork.",
        operation_id="repo_compare_retrieve",
    )
    def get(self, request, owner: str, slug: str, spec: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        base, head = selectors.split_compare_spec(repo, spec)
        comparison = readmodel.branch_diff(base, head)
        paginator, ids = self.paginate(request, comparison.ahead)
        commits = selectors.commits_by_id(ids)
        results = s.CommitSerializer([commits[c] for c in ids if c in commits], many=True).data
        return self.page_response(
            paginator,
            results,
            base_commit_id=comparison.base,
            head_commit_id=comparison.head,
            merge_base_commit_id=comparison.merge_base,
            ahead_by=len(comparison.ahead),
            behind_by=comparison.behind_by,
            changes=comparison.changes.as_dict(),
        )


# --- proposals ------------------------------------------------------------------------------------


class ProposalListView(RepoApiView):
    @extend_schema(
        parameters=[OpenApiParameter("state", str, enum=["open", "merged", "closed"])],
        responses=paginated_schema("ProposalPage", s.ProposalSerializer(many=True)),
        summary="Merge proposals, newest first",
        description="Proposals to merge one branch into another, newest first; `state` keeps open, merged or closed ones.",
        operation_id="repo_proposals_list",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        state = validated(s.ProposalStateFilter, request.query_params.dict()).get("state")
        paginator, page = self.paginate(request, selectors.proposals_of(repo, state))
        return self.page_response(paginator, s.ProposalSerializer(page, many=True).data)

    @extend_schema(
        request=s.ProposalCreateRequest,
        responses={201: s.ProposalSerializer},
        summary="Open a proposal",
        description="Anyone who can read the repository may open a proposal. The source branch must exist; the target defaults to the default branch and may not exist yet (merging creates it).",
        operation_id="repo_proposals_create",
    )
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        body = validated(s.ProposalCreateRequest, request.data)
        proposal = proposals.create_proposal(
            repo.repo_id,
            title=body["title"],
            body=body["body"],
            from_branch=body["from_branch"],
            to_branch=body.get("to_branch") or repo.default_branch,
            acting_user=request.user,
        )
        return Response(s.ProposalSerializer(proposal).data, status=status.HTTP_201_CREATED)


class ProposalDetailView(RepoApiView):
    @extend_schema(
        responses=s.ProposalSerializer,
        summary="A proposal",
        description="A proposal by its number in this repository.",
        operation_id="repo_proposal_retrieve",
    )
    def get(self, request, owner: str, slug: str, number: int):
        repo = repo_for(request.user, owner, slug, Role.READ)
        return Response(s.ProposalSerializer(selectors.proposal_by_number(repo, number)).data)

    @extend_schema(
        request=s.ProposalUpdateRequest,
        responses=s.ProposalSerializer,
        summary="Edit title or body",
        description="The author or anyone with the write role may edit the title and body.",
        operation_id="repo_proposal_update",
    )
    def patch(self, request, owner: str, slug: str, number: int):
        repo = repo_for(request.user, owner, slug, Role.READ)
        body = validated(s.ProposalUpdateRequest, request.data)
        proposal = selectors.proposal_by_number(repo, number)
        proposal = proposals.update_proposal(
            repo.repo_id, proposal.proposal_id, acting_user=request.user, title=body.get("title"), body=body.get("body")
        )
        return Response(s.ProposalSerializer(proposal).data)


class ProposalMergeView(RepoApiView):
    @extend_schema(
        request=s.MergeRequest,
        responses={200: s.ProposalSerializer, 409: s.MergeConflictResponse},
        summary="Merge a proposal (merge, squash or fast-forward)",
        description="Needs the write role. `merge` makes a two-parent commit, `squash` a one-parent commit, `fast-forward` moves the target (409 `non_fast_forward` when it cannot). Conflicting paths answer 409 `merge_conflict` listing each path and its kind; merge locally and push, then merge again.",
        operation_id="repo_proposal_merge",
    )
    def post(self, request, owner: str, slug: str, number: int):
        repo = repo_for(request.user, owner, slug, Role.WRITE)
        strategy = validated(s.MergeRequest, request.data)["strategy"]
        proposal = selectors.proposal_by_number(repo, number)
        proposal = proposals.merge_proposal(
            repo.repo_id, proposal.proposal_id, strategy=strategy, acting_user=request.user
        )
        return Response(s.ProposalSerializer(proposal).data)


class ProposalCloseView(RepoApiView):
    @extend_schema(
        request=None,
        responses=s.ProposalSerializer,
        summary="Close a proposal without merging",
        description="The author or anyone with the write role may close an open proposal.",
        operation_id="repo_proposal_close",
    )
    def post(self, request, owner: str, slug: str, number: int):
        repo = repo_for(request.user, owner, slug, Role.READ)
        proposal = selectors.proposal_by_number(repo, number)
        proposal = proposals.close_proposal(repo.repo_id, proposal.proposal_id, acting_user=request.user)
        return Response(s.ProposalSerializer(proposal).data)


class ProposalReopenView(RepoApiView):
    @extend_schema(
        request=None,
        responses=s.ProposalSerializer,
        summary="Reopen a closed proposal",
        description="The author or anyone with the write role may reopen a closed proposal.",
        operation_id="repo_proposal_reopen",
    )
    def post(self, request, owner: str, slug: str, number: int):
        repo = repo_for(request.user, owner, slug, Role.READ)
        proposal = selectors.proposal_by_number(repo, number)
        proposal = proposals.reopen_proposal(repo.repo_id, proposal.proposal_id, acting_user=request.user)
        return Response(s.ProposalSerializer(proposal).data)


# --- repositories ---------------------------------------------------------------------------------


class RepoListView(RepoApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("owner", str, description="Only this owner's repositories (any case)."),
            OpenApiParameter("q", str, description="Only repositories whose name or description contains this."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated_schema("RepoPage", s.RepoSerializer(many=True)),
        summary="Repositories you may read, newest activity first",
        description="Public repositories, plus (with a token) your own and those you collaborate on; "
        "`owner` keeps one owner's (any case), `q` those whose slug, name or description contains it.",
        operation_id="repos_list",
    )
    def get(self, request):
        query = validated(s.RepoListQuery, request.query_params.dict())
        rows = selectors.readable_repos(request.user, owner=query.get("owner"), q=query.get("q"))
        paginator, page = self.paginate(request, rows)
        return self.page_response(paginator, s.RepoSerializer(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=s.RepoCreateRequest,
        responses={201: s.RepoSerializer},
        summary="Create a repository under your own name",
        description="A first push creates a public repository too; create it here first to make it private.",
        operation_id="repos_create",
    )
    def post(self, request):
        if not request.user.is_authenticated:
            raise AuthenticationRequired()
        body = validated(s.RepoCreateRequest, request.data)
        repo = create_repo(
            owner=request.user,
            slug=body["name"],
            visibility=body["visibility"],
            description=body["description"],
            default_branch=body["default_branch"],
            domain=body["domain"],
        )
        return Response(s.RepoSerializer(repo, context={"request": request}).data, status=status.HTTP_201_CREATED)


class RepoDetailView(ApiView):
    @extend_schema(
        responses=s.RepoSerializer,
        summary="A repository",
        description="The repository's settings and its clone URL (the URL the muse CLI and the MuseHub client take).",
        operation_id="repo_retrieve",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        return Response(s.RepoSerializer(repo, context={"request": request}).data)

    @extend_schema(
        request=s.RepoUpdateRequest,
        responses=s.RepoSerializer,
        summary="Change description, visibility or default branch (admin role)",
        description="The default branch must be a branch the repository has (422 `unknown_branch` otherwise).",
        operation_id="repo_update",
    )
    def patch(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.ADMIN)
        body = validated(s.RepoUpdateRequest, request.data)
        repo = update_repo(repo, acting_user=request.user, **body)
        return Response(s.RepoSerializer(repo, context={"request": request}).data)

    @extend_schema(
        request=None,
        responses={204: None},
        summary="Delete a repository (admin role)",
        description=(
            "Deletes the repository with its branches, proposals, releases, tags and collaborators at once. "
            "Commits, snapshots, objects and packs no other repository uses are removed by `manage.py gc` "
            "after its grace period."
        ),
        operation_id="repo_destroy",
    )
    def delete(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.ADMIN)
        delete_repo(repo, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RepoRenameView(ApiView):
    @extend_schema(
        request=s.RepoRenameRequest,
        responses=s.RepoSerializer,
        summary="Rename a repository or transfer it to another account",
        description=(
            "Renaming needs the admin role, a transfer the owner. The old name then answers "
            "404 `repo_moved` with `moved_to` (wire clients refuse redirects) until a repository is created "
            "under it again. After a transfer the former owner stays on as an admin collaborator."
        ),
        operation_id="repo_rename",
    )
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.ADMIN)
        body = validated(s.RepoRenameRequest, request.data)
        repo = rename_repo(repo, acting_user=request.user, new_slug=body.get("slug"), new_owner=body.get("owner"))
        return Response(s.RepoSerializer(repo, context={"request": request}).data)


class UserView(ApiView):
    @extend_schema(
        responses=s.UserSerializer,
        summary="The authenticated user",
        description="Who the token (or session) belongs to; clients author commits as this user.",
        operation_id="user_retrieve",
    )
    def get(self, request):
        if not request.user.is_authenticated:
            raise AuthenticationRequired(
                "Send 'Authorization: Bearer <token>' (python manage.py musehub_token create USER prints one)."
            )
        return Response(s.UserSerializer(request.user).data)


class CollaboratorView(ApiView):
    @extend_schema(
        request=s.CollaboratorRequest,
        responses={204: None},
        summary="Grant a role on a repository",
        description="Repository admins give a user `read`, `write` or `admin` (replacing any earlier role).",
        operation_id="repo_collaborator_update",
    )
    def put(self, request, owner: str, slug: str, username: str):
        repo = repo_for(request.user, owner, slug, Role.ADMIN)
        set_collaborator(repo, username=username, role=validated(s.CollaboratorRequest, request.data)["role"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={204: None},
        summary="Remove a collaborator",
        description="Repository admins take away every role the user holds on the repository.",
        operation_id="repo_collaborator_destroy",
    )
    def delete(self, request, owner: str, slug: str, username: str):
        repo = repo_for(request.user, owner, slug, Role.ADMIN)
        remove_collaborator(repo, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- releases, tags and published domains ---------------------------------------------------------


class ReleaseListView(RepoApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("channel", str, enum=["stable", "beta", "alpha", "nightly"]),
            OpenApiParameter("include_drafts", bool, description="Drafts too (callers who may write)."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated_schema("ReleasePage", s.ReleaseSerializer(many=True)),
        summary="Releases, newest first",
        description="Named releases of commits, newest first; drafts only with `include_drafts` and the write role.",
        operation_id="repo_releases_list",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        query = validated(s.ReleaseListQuery, request.query_params.dict())
        drafts = query["include_drafts"] and sees_drafts(request.user, repo)
        paginator, page = self.paginate(
            request, selectors.releases_of(repo, channel=query.get("channel"), include_drafts=drafts)
        )
        return self.page_response(paginator, s.ReleaseSerializer(page, many=True).data)


class ReleaseDetailView(RepoApiView):
    @extend_schema(
        responses=s.ReleaseSerializer,
        summary="A release",
        description="One release by its tag: its commit, notes, channel and semver (a draft only for writers).",
        operation_id="repo_release_retrieve",
    )
    def get(self, request, owner: str, slug: str, tag: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        release = selectors.release_by_tag(repo, tag, include_drafts=sees_drafts(request.user, repo))
        return Response(s.ReleaseSerializer(release).data)


class TagListView(RepoApiView):
    @extend_schema(
        parameters=[
            OpenApiParameter("commit", str, description="Only the tags on this commit."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=paginated_schema("TagPage", s.TagSerializer(many=True)),
        summary="Tags on commits, by name",
        description="Tags (names on commits), by name; `commit` keeps those on one commit.",
        operation_id="repo_tags_list",
    )
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug, Role.READ)
        paginator, page = self.paginate(request, selectors.tags_of(repo, commit_id=request.query_params.get("commit")))
        return self.page_response(paginator, s.TagSerializer(page, many=True).data)


class DomainListView(RepoApiView):
    @extend_schema(
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses=paginated_schema("DomainPage", s.DomainSerializer(many=True)),
        summary="Published Muse domains",
        description="Muse domain plugins published with `muse domains publish`, by `@publisher/slug`.",
        operation_id="domains_list",
    )
    def get(self, request):
        paginator, page = self.paginate(request, selectors.published_domains())
        return self.page_response(paginator, s.DomainSerializer(page, many=True).data)

    @extend_schema(
        request=s.DomainPublishRequest,
        responses={201: s.DomainSerializer, 200: s.DomainSerializer},
        summary="Publish a Muse domain (muse domains publish): 201 new, 200 republished or unchanged",
        description="Publish a domain as yourself (`author_slug` is your username). Publishing again needs a higher version, unless nothing changed.",
        operation_id="domains_publish",
    )
    def post(self, request):
        if not request.user.is_authenticated:
            raise AuthenticationRequired("Publishing a domain needs a token: send 'Authorization: Bearer <token>'.")
        body = validated(s.DomainPublishRequest, request.data)
        published = publish_domain(acting_user=request.user, **body)
        code = status.HTTP_201_CREATED if published.created else status.HTTP_200_OK
        return Response(s.DomainSerializer(published.domain).data, status=code)


class DomainDetailView(ApiView):
    @extend_schema(
        responses=s.DomainSerializer,
        summary="A published domain",
        description="One published domain, `@author/slug` (the `@` is optional).",
        operation_id="domain_retrieve",
    )
    def get(self, request, author: str, slug: str):
        return Response(s.DomainSerializer(selectors.domain_by_name(author, slug)).data)


# The wire routes' suffixes (wire/urls.py), as one regular expression.
WIRE_SUFFIXES = (
    r"refs|filter-objects|mpack/upload|mpack/push|mpack/fetch|presign|push|push/objects|fetch|negotiate"
    r"|releases|releases/.+|tags"
)


def reserved_owner_route(request, owner: str, slug: str, suffix: str) -> JsonResponse:
    """Answer a wire route under a reserved owner (``/admin/x/refs``) with JSON, before the admin's HTML catches it."""
    return json_error(reserved_owner_error(owner))
