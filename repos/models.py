"""The content model: repositories, their branches, and content-addressed history.

Content tables (Commit, CommitGraph, Snapshot, Object) are keyed by content id
and shared by every repository; the ``*Ref`` tables say which repository can see
which row. Commits and snapshots live here only (``storage_uri`` stays NULL);
blob bytes live in mpacks in object storage, located through ``MPackIndex``.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

ID_LENGTH = 71  # "sha256:" + 64 hex digits

slug_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    "A slug is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


def content_id_field(**kwargs) -> models.CharField:
    return models.CharField(max_length=ID_LENGTH, **kwargs)


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"


class Role(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    ADMIN = "admin", "Admin"


class Repo(models.Model):
    repo_id = content_id_field(primary_key=True)
    owner = models.CharField(max_length=150, help_text="Username of the owning account.")
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="repos"
    )
    owner_identity_id = content_id_field(blank=True, default="")
    slug = models.CharField(max_length=100, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC)
    domain = models.CharField(max_length=32, default="code")
    default_branch = models.CharField(max_length=255, default="main")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    former_names = models.TextField(
        blank=True,
        default="",
        help_text="Lower-cased owner/slug names this repository had before a rename or transfer, one per line "
        "(their old URLs answer where it went).",
    )

    class Meta:
        db_table = "musehub_repos"
        # GitHub's rule: alice/MySongs and alice/mysongs are one repository (the stored spelling is for display).
        constraints = [models.UniqueConstraint(Lower("owner"), Lower("slug"), name="musehub_repo_owner_slug_ci")]
        ordering = ["owner", "slug"]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.slug}"

    @property
    def is_public(self) -> bool:
        return self.visibility == Visibility.PUBLIC


class Collaborator(models.Model):
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.READ)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_collaborators"
        constraints = [models.UniqueConstraint(fields=["repo", "user"], name="musehub_collaborator_repo_user")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) on {self.repo}"


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the clear text is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, default="")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters, to recognise a token.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "musehub_api_tokens"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class Branch(models.Model):
    branch_id = content_id_field(primary_key=True)
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="branches")
    name = models.CharField(max_length=255)
    head_commit_id = content_id_field(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "musehub_branches"
        constraints = [models.UniqueConstraint(fields=["repo", "name"], name="musehub_branch_repo_name")]
        ordering = ["repo", "name"]
        verbose_name_plural = "branches"

    def __str__(self) -> str:
        return self.name


class Commit(models.Model):
    commit_id = content_id_field(primary_key=True)
    parent_ids = models.JSONField(default=list)
    snapshot_id = content_id_field(db_index=True)
    branch = models.CharField(max_length=255, blank=True, default="")
    message = models.TextField(blank=True, default="")
    author = models.CharField(max_length=255, blank=True, default="")
    committed_at = models.CharField(
        max_length=64, blank=True, default="", help_text="The timestamp exactly as the client sent it (part of the id)."
    )
    timestamp = models.DateTimeField()
    metadata = models.JSONField(default=dict, blank=True, help_text="Optional client fields, returned unchanged.")
    storage_uri = models.CharField(max_length=300, null=True, blank=True)

    class Meta:
        db_table = "musehub_commits"

    def __str__(self) -> str:
        return self.commit_id


class CommitRef(models.Model):
    # No index of its own: the unique (repo, ...) constraint's index leads with repo_id.
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="commit_refs", db_index=False)
    commit = models.ForeignKey(Commit, on_delete=models.CASCADE, db_column="commit_id", related_name="refs")

    class Meta:
        db_table = "musehub_commit_refs"
        constraints = [models.UniqueConstraint(fields=["repo", "commit"], name="musehub_commit_ref_unique")]

    def __str__(self) -> str:
        return f"{self.commit_id} in {self.repo_id}"


class CommitGraph(models.Model):
    """Ancestry without commit bodies: the walks in ``repos.graph`` read only this table."""

    commit_id = content_id_field(primary_key=True)
    parent_ids = models.JSONField(default=list)
    generation = models.IntegerField(db_index=True, help_text="0 for a root, else 1 + the largest parent generation.")
    snapshot_id = content_id_field()

    class Meta:
        db_table = "musehub_commit_graph"

    def __str__(self) -> str:
        return f"{self.commit_id} (generation {self.generation})"


class Snapshot(models.Model):
    """A manifest, stored whole (a checkpoint) or as a delta against ``base_id``; only ``repos.manifests`` reads it."""

    snapshot_id = content_id_field(primary_key=True)
    manifest_blob = models.BinaryField(
        help_text="zstd msgpack: {path: object_id} for a checkpoint, {set, delete} for a delta."
    )
    base_id = content_id_field(null=True, blank=True, db_index=True, help_text="The snapshot a delta applies to.")
    depth = models.IntegerField(default=0, help_text="Deltas between this snapshot and its checkpoint.")
    entry_count = models.IntegerField(default=0)
    stated_created_at = models.CharField(
        max_length=64, blank=True, default="", help_text="The SnapshotDict's created_at, verbatim as pushed."
    )
    parent_changes = models.BinaryField(
        null=True,
        blank=True,
        help_text="A checkpoint's note, zstd msgpack {parent, paths}: the paths it changes against its first "
        "parent's snapshot (a path's log reads this instead of two whole manifests).",
    )
    created_at = models.DateTimeField(null=True, blank=True, help_text="When this row was written (gc's grace).")
    storage_uri = models.CharField(max_length=300, null=True, blank=True)

    class Meta:
        db_table = "musehub_snapshots"

    def __str__(self) -> str:
        return self.snapshot_id


class SnapshotRef(models.Model):
    # No index of its own: the unique (repo, ...) constraint's index leads with repo_id.
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="snapshot_refs", db_index=False)
    snapshot = models.ForeignKey(Snapshot, on_delete=models.CASCADE, db_column="snapshot_id", related_name="refs")

    class Meta:
        db_table = "musehub_snapshot_refs"
        constraints = [models.UniqueConstraint(fields=["repo", "snapshot"], name="musehub_snapshot_ref_unique")]

    def __str__(self) -> str:
        return f"{self.snapshot_id} in {self.repo_id}"


class Object(models.Model):
    object_id = content_id_field(primary_key=True)
    size_bytes = models.BigIntegerField(default=0)
    path = models.CharField(max_length=1024, blank=True, default="", help_text="A path it was first seen at (a hint).")
    storage_uri = models.CharField(max_length=300, null=True, blank=True)
    content_cache = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_objects"

    def __str__(self) -> str:
        return self.object_id


class ObjectRef(models.Model):
    # No index of its own: the unique (repo, ...) constraint's index leads with repo_id.
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="object_refs", db_index=False)
    object = models.ForeignKey(Object, on_delete=models.CASCADE, db_column="object_id", related_name="refs")

    class Meta:
        db_table = "musehub_object_refs"
        constraints = [models.UniqueConstraint(fields=["repo", "object"], name="musehub_object_ref_unique")]

    def __str__(self) -> str:
        return f"{self.object_id} in {self.repo_id}"


class MPackKind(models.TextChoices):
    PUSH = "push", "Push"
    FETCH = "fetch", "Fetch"
    REPACK = "repack", "Repack"
    SERVER = "server", "Server-side commit"


class MPack(models.Model):
    mpack_id = content_id_field(primary_key=True)
    kind = models.CharField(max_length=8, choices=MPackKind.choices)
    repo = models.ForeignKey(
        Repo,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mpacks",
        help_text="The repository the pack was pushed to or built for.",
    )
    size_bytes = models.BigIntegerField(default=0)
    commit_count = models.IntegerField(default=0)
    snapshot_count = models.IntegerField(default=0)
    blob_count = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    damaged_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a streamed read found the stored bytes do not hash to the pack's id; from then on "
        "every blob read from it is checked on its own (and read from another copy if it is damaged). "
        "Run musehub_fsck.",
    )

    class Meta:
        db_table = "musehub_mpacks"
        ordering = ["-created_at"]
        verbose_name = "mpack"

    def __str__(self) -> str:
        return self.mpack_id


class MPackIndex(models.Model):
    """Where one blob's bytes lie inside one mpack (offset and length of its ``content``)."""

    entity_id = content_id_field()
    mpack_id = content_id_field(db_index=True)
    entity_type = models.CharField(max_length=16, default="object")
    offset = models.BigIntegerField(null=True, blank=True)
    length = models.BigIntegerField(null=True, blank=True)
    encoding = models.CharField(max_length=16, blank=True, default="", help_text="'' for raw bytes, or 'zstd'.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_mpack_index"
        verbose_name = "mpack index entry"
        verbose_name_plural = "mpack index"
        constraints = [models.UniqueConstraint(fields=["entity_id", "mpack_id"], name="musehub_mpack_index_unique")]

    def __str__(self) -> str:
        return f"{self.entity_id} in {self.mpack_id}"


class MPackUpload(models.Model):
    """An upload slot handed to one user for one repository: the pack lands in staging first."""

    upload_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="uploads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    mpack_key = content_id_field()
    size_bytes = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    promoted = models.BooleanField(
        default=False, help_text="The uploaded bytes were verified and moved to the pack's content key."
    )

    class Meta:
        db_table = "musehub_mpack_uploads"
        verbose_name = "mpack upload"
        indexes = [models.Index(fields=["repo", "mpack_key"], name="musehub_upload_repo_key")]

    def __str__(self) -> str:
        return f"upload {self.upload_id} of {self.mpack_key}"


class StagedObject(models.Model):
    """A blob a muse CLI push uploads by presigned URL; folded into an mpack when its push arrives."""

    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="staged_objects")
    object_id = content_id_field()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_staged_objects"
        constraints = [models.UniqueConstraint(fields=["repo", "object_id"], name="musehub_staged_object_unique")]

    def __str__(self) -> str:
        return f"staged {self.object_id} for {self.repo_id}"


class ProposalState(models.TextChoices):
    OPEN = "open", "Open"
    MERGED = "merged", "Merged"
    CLOSED = "closed", "Closed"


class Proposal(models.Model):
    proposal_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="proposals")
    number = models.IntegerField()
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, default="")
    from_branch = models.CharField(max_length=255)
    to_branch = models.CharField(max_length=255)
    base_commit_id = content_id_field(null=True, blank=True, help_text="Merge base when the proposal was opened.")
    head_commit_id = content_id_field(null=True, blank=True, help_text="Source head when the proposal was opened.")
    state = models.CharField(max_length=8, choices=ProposalState.choices, default=ProposalState.OPEN)
    merge_commit_id = content_id_field(null=True, blank=True)
    merge_strategy = models.CharField(max_length=16, blank=True, default="")
    author = models.CharField(max_length=150, blank=True, default="")
    merged_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "musehub_proposals"
        constraints = [models.UniqueConstraint(fields=["repo", "number"], name="musehub_proposal_repo_number")]
        ordering = ["repo", "-number"]

    def __str__(self) -> str:
        return f"#{self.number} {self.title}"


# --- what is published from a repository: releases and tags; and published Muse domains ---------


class ReleaseChannel(models.TextChoices):
    STABLE = "stable", "Stable"
    BETA = "beta", "Beta"
    ALPHA = "alpha", "Alpha"
    NIGHTLY = "nightly", "Nightly"


class Release(models.Model):
    """A named, versioned release of one commit of a repository (``muse release push``)."""

    release_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="releases")
    tag = models.CharField(max_length=255, help_text="The release's version tag, e.g. v1.2.0 (unique per repository).")
    commit_id = content_id_field(help_text="The released commit; always one the repository holds.")
    snapshot_id = content_id_field(blank=True, default="", help_text="The released commit's snapshot.")
    title = models.CharField(max_length=300, blank=True, default="")
    notes = models.TextField(blank=True, default="", help_text="The release notes (the CLI's body).")
    channel = models.CharField(max_length=8, choices=ReleaseChannel.choices, default=ReleaseChannel.STABLE)
    is_draft = models.BooleanField(default=False, help_text="Drafts are shown only to those who may write.")
    semver = models.JSONField(default=dict, blank=True, help_text="{major, minor, patch, pre, build}.")
    metadata = models.JSONField(
        default=dict,
        blank=True,
        help_text="Other fields the client sent (changelog, agent_id, ...), returned unchanged.",
    )
    author = models.CharField(max_length=150, blank=True, default="", help_text="Who pushed the release.")
    created_at = models.DateTimeField(help_text="When the release was made (as the client stated it).")
    pushed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_releases"
        constraints = [models.UniqueConstraint(fields=["repo", "tag"], name="musehub_release_repo_tag")]
        ordering = ["repo", "-created_at"]

    def __str__(self) -> str:
        return f"{self.tag} of {self.repo_id}"


class Tag(models.Model):
    """A label on a commit (muse's semantic tags: ``emotion:joyful``, ``stage:master``); a label may name many commits."""

    repo = models.ForeignKey(Repo, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=255)
    commit_id = content_id_field()
    created_at = models.DateTimeField(help_text="When the tag was made (as the client stated it).")
    pushed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "musehub_tags"
        constraints = [
            models.UniqueConstraint(fields=["repo", "name", "commit_id"], name="musehub_tag_repo_name_commit")
        ]
        ordering = ["repo", "name", "created_at"]

    def __str__(self) -> str:
        return f"{self.name} on {self.commit_id}"


class Domain(models.Model):
    """A Muse domain plugin's manifest as published with ``muse domains publish``: ``@publisher/slug``."""

    domain_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    author_slug = models.CharField(max_length=150, help_text="The publishing account's username.")
    publisher = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="published_domains"
    )
    slug = models.CharField(max_length=32)
    display_name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    version = models.CharField(max_length=64, help_text="Semver of the latest publication.")
    viewer_type = models.CharField(max_length=64, blank=True, default="")
    capabilities = models.JSONField(default=dict, blank=True, help_text="The capability manifest, as published.")
    manifest_hash = models.CharField(max_length=64, help_text="SHA-256 of the capability manifest (canonical JSON).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "musehub_domains"
        constraints = [models.UniqueConstraint(fields=["author_slug", "slug"], name="musehub_domain_author_slug")]
        ordering = ["author_slug", "slug"]

    def __str__(self) -> str:
        return self.scoped_id

    @property
    def scoped_id(self) -> str:
        return f"@{self.author_slug}/{self.slug}"
