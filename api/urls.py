"""Routes of the REST API, all under ``/api/``: the schema and its docs, repositories, and each repository's API.

Branch names and file paths may hold slashes, so those routes take the rest of the URL.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from api import views
from api.schema import OfflineRedocView

repo = "v1/repos/<str:owner>/<str:slug>"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", OfflineRedocView.as_view(url_name="schema"), name="api-docs"),
    path("v1/repos", views.RepoListView.as_view(), name="repo-list"),
    path("v1/user", views.UserView.as_view(), name="api-user"),
    path(repo, views.RepoDetailView.as_view(), name="repo-detail"),
    path(f"{repo}/rename", views.RepoRenameView.as_view(), name="repo-rename"),
    path(f"{repo}/collaborators/<str:username>", views.CollaboratorView.as_view(), name="collaborator"),
    path(f"{repo}/branches", views.BranchListView.as_view(), name="api-branches"),
    path(f"{repo}/branches/<path:name>", views.BranchDetailView.as_view(), name="api-branch"),
    path(f"{repo}/commits", views.CommitListView.as_view(), name="api-commits"),
    path(f"{repo}/commits/<str:commit_id>", views.CommitDetailView.as_view(), name="api-commit"),
    path(f"{repo}/tree/<path:spec>", views.TreeView.as_view(), name="api-tree"),
    path(f"{repo}/raw/<path:spec>", views.RawView.as_view(), name="api-raw"),
    path(f"{repo}/compare/<path:spec>", views.CompareView.as_view(), name="api-compare"),
    path(f"{repo}/proposals", views.ProposalListView.as_view(), name="api-proposals"),
    path(f"{repo}/proposals/<int:number>", views.ProposalDetailView.as_view(), name="api-proposal"),
    path(f"{repo}/proposals/<int:number>/merge", views.ProposalMergeView.as_view(), name="api-proposal-merge"),
    path(f"{repo}/proposals/<int:number>/close", views.ProposalCloseView.as_view(), name="api-proposal-close"),
    path(f"{repo}/proposals/<int:number>/reopen", views.ProposalReopenView.as_view(), name="api-proposal-reopen"),
    path(f"{repo}/releases", views.ReleaseListView.as_view(), name="api-releases"),
    path(f"{repo}/releases/<path:tag>", views.ReleaseDetailView.as_view(), name="api-release"),
    path(f"{repo}/tags", views.TagListView.as_view(), name="api-tags"),
    path("v1/domains", views.DomainListView.as_view(), name="api-domains"),
    path("v1/domains/<str:author>/<str:slug>", views.DomainDetailView.as_view(), name="api-domain"),
]
