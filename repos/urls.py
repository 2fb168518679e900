"""Routes of one repository's REST API, included under ``api/v1/repos/<owner>/<slug>/``.

Branch names and file paths may hold slashes, so those routes take the rest of the URL.
"""

from django.urls import path

from repos import api

urlpatterns = [
    path("branches", api.BranchListView.as_view(), name="api-branches"),
    path("branches/<path:name>", api.BranchDetailView.as_view(), name="api-branch"),
    path("commits", api.CommitListView.as_view(), name="api-commits"),
    path("commits/<str:commit_id>", api.CommitDetailView.as_view(), name="api-commit"),
    path("tree/<path:spec>", api.TreeView.as_view(), name="api-tree"),
    path("raw/<path:spec>", api.RawView.as_view(), name="api-raw"),
    path("compare/<path:spec>", api.CompareView.as_view(), name="api-compare"),
    path("proposals", api.ProposalListView.as_view(), name="api-proposals"),
    path("proposals/<int:number>", api.ProposalDetailView.as_view(), name="api-proposal"),
    path("proposals/<int:number>/merge", api.ProposalMergeView.as_view(), name="api-proposal-merge"),
    path("proposals/<int:number>/close", api.ProposalCloseView.as_view(), name="api-proposal-close"),
    path("proposals/<int:number>/reopen", api.ProposalReopenView.as_view(), name="api-proposal-reopen"),
]
