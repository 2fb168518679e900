"""Routes of the web pages. Only exact page routes: any other URL keeps answering the JSON 404.

``/{owner}/{slug}`` and its page suffixes (tree, blob, commits, commit,
branches, compare, proposals, settings) sit beside the wire routes of the same
repository URL; ``accounts`` is the one new top-level name (so a reserved owner name).
"""

from django.urls import path

from web.views import accounts, browse, explore, history, proposals, settings

repo = "<str:owner>/<str:slug>"

urlpatterns = [
    path("", explore.explore, name="web-explore"),
    path("accounts/login", accounts.LoginView.as_view(), name="web-login"),
    path("accounts/logout", accounts.LogoutView.as_view(), name="web-logout"),
    path("accounts/tokens", accounts.tokens, name="web-tokens"),
    path("<str:owner>", explore.profile, name="web-profile"),
    path(repo, browse.repo_home, name="web-repo"),
    path(f"{repo}/tree/<path:spec>", browse.tree, name="web-tree"),
    path(f"{repo}/blob/<path:spec>", browse.blob, name="web-blob"),
    path(f"{repo}/commits", history.commits, name="web-commits-default"),
    path(f"{repo}/commits/<path:spec>", history.commits, name="web-commits"),
    path(f"{repo}/commit/<str:commit_id>", history.commit, name="web-commit"),
    path(f"{repo}/branches", history.branches, name="web-branches"),
    path(f"{repo}/compare", history.compare, name="web-compare-form"),
    path(f"{repo}/compare/<path:spec>", history.compare, name="web-compare"),
    path(f"{repo}/proposals", proposals.proposal_list, name="web-proposals"),
    path(f"{repo}/proposals/new", proposals.proposal_new, name="web-proposal-new"),
    path(f"{repo}/proposals/<int:number>", proposals.proposal_detail, name="web-proposal"),
    path(f"{repo}/proposals/<int:number>/edit", proposals.proposal_edit, name="web-proposal-edit"),
    path(f"{repo}/proposals/<int:number>/merge", proposals.proposal_merge, name="web-proposal-merge"),
    path(f"{repo}/proposals/<int:number>/close", proposals.proposal_close, name="web-proposal-close"),
    path(f"{repo}/proposals/<int:number>/reopen", proposals.proposal_reopen, name="web-proposal-reopen"),
    path(f"{repo}/settings", settings.repo_settings, name="web-settings"),
]
