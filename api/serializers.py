"""Request and response shapes of the REST API (validation, and the OpenAPI schema)."""

from __future__ import annotations

from rest_framework import serializers

from repos.models import Commit, Domain, Proposal, ProposalState, Release, ReleaseChannel, Repo, Role, Tag, Visibility
from repos.services.proposals import MergeStrategy


class CommitSerializer(serializers.ModelSerializer):
    class Meta:
        model = Commit
        fields = [
            "commit_id", "parent_ids", "snapshot_id", "branch", "message", "author", "committed_at", "timestamp",
            "metadata",
        ]  # fmt: skip
        read_only_fields = fields


class ChangesSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField())
    modified = serializers.ListField(child=serializers.CharField())
    removed = serializers.ListField(child=serializers.CharField())


class CommitDetailSerializer(CommitSerializer):
    changes = serializers.SerializerMethodField()

    class Meta(CommitSerializer.Meta):
        fields = [*CommitSerializer.Meta.fields, "changes"]
        read_only_fields = fields

    def get_changes(self, commit: Commit) -> dict[str, list[str]]:
        return self.context["changes"].as_dict()


class BranchSerializer(serializers.Serializer):
    """A branch and its head commit (``context["commits"]``: {commit_id: Commit}, loaded in one query)."""

    name = serializers.CharField()
    head_commit_id = serializers.CharField()
    is_default = serializers.SerializerMethodField()
    head = serializers.SerializerMethodField()

    def get_is_default(self, branch) -> bool:
        return branch.name == self.context["repo"].default_branch

    def get_head(self, branch) -> dict | None:
        commit = self.context["commits"].get(branch.head_commit_id)
        return CommitSerializer(commit).data if commit is not None else None


class TreeEntrySerializer(serializers.Serializer):
    name = serializers.CharField()
    path = serializers.CharField()
    kind = serializers.ChoiceField(choices=["file", "dir"])
    object_id = serializers.CharField(allow_null=True)
    size = serializers.IntegerField(allow_null=True)


class ProposalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Proposal
        fields = [
            "proposal_id", "number", "title", "body", "state", "from_branch", "to_branch", "base_commit_id",
            "head_commit_id", "merge_commit_id", "merge_strategy", "author", "merged_by", "created_at",
            "updated_at", "merged_at", "closed_at",
        ]  # fmt: skip
        read_only_fields = fields


class ProposalCreateRequest(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    body = serializers.CharField(allow_blank=True, default="", max_length=100_000)
    from_branch = serializers.CharField(max_length=255)
    to_branch = serializers.CharField(max_length=255, required=False, help_text="Default: the default branch.")


class ProposalUpdateRequest(serializers.Serializer):
    title = serializers.CharField(max_length=300, required=False)
    body = serializers.CharField(allow_blank=True, max_length=100_000, required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send a title, a body, or both.")
        return attrs


class ProposalStateFilter(serializers.Serializer):
    state = serializers.ChoiceField(choices=ProposalState.choices, required=False)


class MergeRequest(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=MergeStrategy.choices, default=MergeStrategy.MERGE)


class ConflictSerializer(serializers.Serializer):
    path = serializers.CharField()
    kind = serializers.CharField()


class MergeConflictResponse(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    conflicts = ConflictSerializer(many=True)


class RepoSerializer(serializers.ModelSerializer):
    full_name = serializers.CharField(read_only=True)
    clone_url = serializers.SerializerMethodField()

    class Meta:
        model = Repo
        fields = [
            "repo_id", "owner", "slug", "name", "full_name", "description", "visibility", "domain",
            "default_branch", "created_at", "updated_at", "clone_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_clone_url(self, repo: Repo) -> str:
        request = self.context.get("request")
        path = f"/{repo.owner}/{repo.slug}"
        return request.build_absolute_uri(path) if request else path


class RepoCreateRequest(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="Becomes the slug: owner/name.")
    visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PUBLIC)
    description = serializers.CharField(allow_blank=True, default="", max_length=10_000)
    default_branch = serializers.CharField(default="main", max_length=255)
    domain = serializers.CharField(
        default="code", max_length=32, help_text="The Muse domain plugin of the repository: code, midi, ..."
    )


class RepoListQuery(serializers.Serializer):
    owner = serializers.CharField(max_length=150, required=False)
    q = serializers.CharField(max_length=200, required=False)


class RepoUpdateRequest(serializers.Serializer):
    description = serializers.CharField(allow_blank=True, max_length=10_000, required=False)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    default_branch = serializers.CharField(
        max_length=255, required=False, help_text="An existing branch (422 unknown_branch otherwise)."
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send at least one of description, visibility, default_branch.")
        return attrs


class RepoRenameRequest(serializers.Serializer):
    slug = serializers.CharField(max_length=100, required=False, help_text="The new name: owner/slug.")
    owner = serializers.CharField(max_length=150, required=False, help_text="Transfer to this user (owner only).")

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Send a new slug, a new owner, or both.")
        return attrs


class UserSerializer(serializers.Serializer):
    username = serializers.CharField(source="get_username")
    is_superuser = serializers.BooleanField()


class CollaboratorRequest(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- releases, tags and published domains ---------------------------------------------------------


class ReleaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Release
        fields = [
            "release_id", "tag", "commit_id", "snapshot_id", "title", "notes", "channel", "is_draft", "semver",
            "metadata", "author", "created_at", "pushed_at",
        ]  # fmt: skip
        read_only_fields = fields


class ReleaseListQuery(serializers.Serializer):
    channel = serializers.ChoiceField(choices=ReleaseChannel.choices, required=False)
    include_drafts = serializers.BooleanField(default=False, help_text="Drafts too (callers who may write).")


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["name", "commit_id", "created_at", "pushed_at"]
        read_only_fields = fields


class DomainSerializer(serializers.ModelSerializer):
    scoped_id = serializers.CharField(read_only=True)
    publisher = serializers.SerializerMethodField()

    class Meta:
        model = Domain
        fields = [
            "domain_id", "scoped_id", "author_slug", "slug", "display_name", "description", "version", "viewer_type",
            "capabilities", "manifest_hash", "publisher", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_publisher(self, domain: Domain) -> str | None:
        return domain.publisher.get_username() if domain.publisher_id else None


class DomainPublishRequest(serializers.Serializer):
    """``muse domains publish``: who publishes what, and its capability manifest."""

    author_slug = serializers.CharField(max_length=150, help_text="Your username: the domain is @author_slug/slug.")
    slug = serializers.CharField(max_length=32)
    display_name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, allow_blank=True, default="")
    capabilities = serializers.DictField(
        default=dict,
        help_text="{dimensions: [{name, description}], artifact_types, merge_semantics, supported_commands}",
    )
    viewer_type = serializers.CharField(max_length=64, allow_blank=True, default="")
    version = serializers.CharField(max_length=64, default="0.1.0", help_text="Semver; a republication must raise it.")
