"""Admin registrations (inspection views are filled out in repos/admin.py's later sections)."""

from django.contrib import admin

from repos import models

for model in (
    models.Repo,
    models.Collaborator,
    models.ApiToken,
    models.Branch,
    models.Commit,
    models.CommitRef,
    models.CommitGraph,
    models.Snapshot,
    models.SnapshotRef,
    models.Object,
    models.ObjectRef,
    models.MPack,
    models.MPackIndex,
    models.MPackUpload,
    models.Proposal,
):
    admin.site.register(model)
