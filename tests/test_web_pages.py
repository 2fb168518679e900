"""The web pages through Django's test client: every page, its permissions, its forms (with CSRF), its queries."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client

from repos import readmodel
from repos.models import Branch, Collaborator, Proposal, Repo, Role
from repos.services.proposals import create_proposal
from repos.services.repos import set_collaborator
from tests.factories import History, make_user, push_history, uid
from tests.webkit import make_songs

pytestmark = pytest.mark.django_db


@pytest.fixture
def songs():
    return make_songs()


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_urls(songs) -> list[str]:
    u = songs.url
    bare = songs.feature["commit_id"].removeprefix("sha256:")
    return [
        u,
        f"{u}/tree/main",
        f"{u}/tree/main/src",
        f"{u}/blob/main/src/play.py",
        f"{u}/blob/main/README.md",
        f"{u}/blob/main/tune.mid",
        f"{u}/blob/main/cover.png",
        f"{u}/blob/main/data.bin",
        f"{u}/commits/main",
        f"{u}/commits",
        f"{u}/commit/{bare}",
        f"{u}/branches",
        f"{u}/compare",
        f"{u}/compare/main...feature",
        f"{u}/proposals",
    ]


# --- pages -----------------------------------------------------------------------------------------


def test_every_page_of_a_public_repository_renders_for_anonymous_visitors(client, songs):
    for url in page_urls(songs):
        reply = client.get(url)
        assert reply.status_code == 200, url
        assert reply["Content-Type"].startswith("text/html"), url


def test_the_home_page_shows_the_tree_the_sanitised_readme_clone_commands_and_counts(client, songs):
    html = client.get(songs.url).content.decode()
    assert "<strong>bold</strong>" in html
    assert "<script>alert" not in html
    assert not any(href.startswith("javascript:") for href in re.findall(r'href="([^"]*)"', html))
    assert f"muse clone http://testserver{songs.url}" in html
    assert "python -m musehub_client clone" in html
    assert ">src/</a>" in html and ">play.py<" not in html  # one directory at a time
    assert "1 commit<" in html and "2 branches" in html and "5 files" in html
    assert "First take" in html


def test_an_empty_repository_shows_how_to_push(client):
    owner = make_user(f"eve-{uid()}")
    repo = Repo.objects.get(pk=make_songs_repo(owner).pk)
    html = client.get(f"/{repo.owner}/{repo.slug}").content.decode()
    assert "This repository is empty" in html and "muse push" in html


def make_songs_repo(owner):
    from tests.factories import make_repo

    return make_repo(owner, f"empty-{uid()}")


def test_a_text_file_is_highlighted_with_line_numbers_and_escaped(client, songs):
    html = client.get(f"{songs.url}/blob/main/src/play.py").content.decode()
    assert 'id="L2"' in html and 'href="#L2"' in html
    assert '<span class="k">def</span>' in html
    assert "&lt;" in html and "<%s>" not in html  # repository text is escaped
    assert f"/api/v1/repos/{songs.repo.owner}/{songs.repo.slug}/raw/main/src/play.py" in html


def test_markdown_files_render_and_their_source_is_one_click_away(client, songs):
    rendered = client.get(f"{songs.url}/blob/main/README.md").content.decode()
    assert "<h1>Songs</h1>" in rendered and "<script>" not in rendered
    source = client.get(f"{songs.url}/blob/main/README.md?plain=1").content.decode()
    assert "# Songs" in source and 'id="L1"' in source


def test_a_midi_file_is_a_piano_roll_with_tracks_tempo_and_length(client, songs):
    html = client.get(f"{songs.url}/blob/main/tune.mid").content.decode()
    assert "<svg" in html and html.count('fill-opacity="') == 3  # one rectangle per note
    assert "90 BPM" in html
    assert "Piano" in html and "3 notes" in html
    assert "2.7 s" in html  # 4 beats (3 notes, the last 2 beats long) at 90 BPM = 2.67 s


def test_an_image_is_shown_and_a_binary_offers_its_size_and_a_download(client, songs):
    image = client.get(f"{songs.url}/blob/main/cover.png").content.decode()
    raw = f"/api/v1/repos/{songs.repo.owner}/{songs.repo.slug}/raw/main/cover.png"
    assert f'<img src="{raw}"' in image
    binary = client.get(f"{songs.url}/blob/main/data.bin").content.decode()
    assert "Binary file" in binary and "9\xa0B" in binary and "Download it" in binary
    downloaded = client.get(raw)
    assert downloaded.status_code == 200 and downloaded["Content-Security-Policy"].startswith("sandbox")


def test_tree_and_blob_redirect_to_each_other_and_unknown_paths_are_404_pages(client, songs):
    assert client.get(f"{songs.url}/tree/main/README.md")["Location"].endswith("/blob/main/README.md")
    assert client.get(f"{songs.url}/blob/main/src")["Location"].endswith("/tree/main/src")
    missing = client.get(f"{songs.url}/blob/main/nope.txt")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/html")
    assert client.get(f"{songs.url}/tree/nobranch").status_code == 404


def test_a_commit_page_shows_parents_and_a_unified_diff_of_text_changes(client, songs):
    bare = songs.feature["commit_id"].removeprefix("sha256:")
    html = client.get(f"{songs.url}/commit/{bare}").content.decode()
    parent = songs.main["commit_id"].removeprefix("sha256:")
    assert f"/commit/{parent}" in html
    assert "2 changed files" in html
    assert "-    return &#x27;&lt;%s&gt;&#x27; % note" in html and "+    return &#x27;[%s]&#x27; % note" in html
    assert "new.txt" in html


def test_the_root_commit_lists_every_file_as_added_and_summarises_binaries(client, songs):
    bare = songs.main["commit_id"].removeprefix("sha256:")
    html = client.get(f"{songs.url}/commit/{bare}").content.decode()
    assert "5 changed files" in html and "Binary file" in html and "none (first commit)" in html


def test_the_log_is_paginated_and_filters_by_path(client, django_assert_max_num_queries):
    owner = make_user(f"log-{uid()}")
    from tests.factories import make_repo

    repo = make_repo(owner, f"log-{uid()}")
    history, parents = History(), []
    for i in range(55):
        files = {"a.txt": f"{i}\n".encode(), "b.txt": f"{i // 10}\n".encode()}
        parents = [history.commit(files, parents=parents, message=f"change {i}")["commit_id"]]
    push_history(repo, history)
    url = f"/{repo.owner}/{repo.slug}/commits/main"
    with django_assert_max_num_queries(10):  # one page of 50 commits: no query per commit
        first = client.get(url).content.decode()
    assert "change 54" in first and "change 4<" not in first and "Page 1 of 2" in first
    second = client.get(url + "?page=2").content.decode()
    assert "change 4<" in second and "change 54" not in second
    only_b = client.get(url + "?path=b.txt").content.decode()
    assert "(6)" in only_b  # commits 0, 10, 20, ... 50 changed b.txt


def test_branches_and_compare_show_what_a_branch_adds(client, songs):
    branches = client.get(f"{songs.url}/branches").content.decode()
    assert "feature" in branches and "default" in branches
    compare = client.get(f"{songs.url}/compare/main...feature").content.decode()
    assert "1 commit main lacks" in compare and "Brackets" in compare and "new.txt" in compare
    assert client.get(f"{songs.url}/compare?base=main&head=feature")["Location"].endswith("/compare/main...feature")
    assert client.get(f"{songs.url}/compare/main...nope").status_code == 404


def test_explore_lists_public_repositories_searches_and_puts_your_own_first(client, songs):
    other = make_songs()
    Repo.objects.filter(pk=other.repo.pk).update(description="ambient drones")
    html = client.get("/").content.decode()
    assert songs.repo.slug in html and other.repo.slug in html
    found = client.get("/?q=drones").content.decode()
    assert other.repo.slug in found and songs.repo.slug not in found
    mine = signed_in(songs.owner).get("/").content.decode()
    assert mine.index(songs.repo.slug) < mine.index(other.repo.slug)


def test_a_profile_lists_private_repositories_only_to_readers(client):
    secret = make_songs(visibility="private")
    url = f"/{secret.owner.username}"
    assert secret.repo.slug not in client.get(url).content.decode()
    assert secret.repo.slug in signed_in(secret.owner).get(url).content.decode()
    assert client.get(f"/nobody-{uid()}").status_code == 404


# --- permissions -----------------------------------------------------------------------------------


def test_a_private_repository_is_a_404_page_on_every_page_for_those_who_may_not_read_it():
    secret = make_songs(visibility="private")
    stranger = signed_in(make_user(f"bob-{uid()}"))
    urls = [*page_urls(secret), f"{secret.url}/settings", f"{secret.url}/proposals/new"]
    for client in (Client(), stranger):
        for url in urls:
            reply = client.get(url)
            if reply.status_code == 302:  # proposals/new sends anonymous visitors to sign in first
                assert "/accounts/login" in reply["Location"], url
                continue
            assert reply.status_code == 404, url
            assert secret.repo.slug in reply.content.decode() or "not found" in reply.content.decode().lower()
    owner = signed_in(secret.owner)
    for url in urls:
        assert owner.get(url).status_code == 200, url


def test_a_missing_repository_and_a_private_one_answer_the_same_404(client):
    secret = make_songs(visibility="private")
    hidden = client.get(secret.url)
    missing = client.get(f"/{secret.owner.username}/no-such-{uid()}")
    assert hidden.status_code == missing.status_code == 404


def test_settings_are_for_admins_only(songs):
    reader, writer = make_user(f"r-{uid()}"), make_user(f"w-{uid()}")
    set_collaborator(songs.repo, username=reader.username, role=Role.READ)
    set_collaborator(songs.repo, username=writer.username, role=Role.WRITE)
    for user in (reader, writer):
        reply = signed_in(user).get(f"{songs.url}/settings")
        assert reply.status_code == 403 and "this needs admin" in reply.content.decode()
    assert Client().get(f"{songs.url}/settings")["Location"].startswith("/accounts/login")
    assert "Settings</a>" not in signed_in(writer).get(songs.url).content.decode()
    assert "Settings</a>" in signed_in(songs.owner).get(songs.url).content.decode()


def test_forms_refuse_a_post_without_its_csrf_token(songs):
    client = Client(enforce_csrf_checks=True)
    client.force_login(songs.owner)
    reply = client.post(f"{songs.url}/proposals/new", {"title": "x", "from_branch": "feature", "to_branch": "main"})
    assert reply.status_code == 403
    assert not Proposal.objects.filter(repo=songs.repo).exists()
    reply = client.post(f"{songs.url}/settings", {"action": "delete", "confirm": songs.repo.full_name})
    assert reply.status_code == 403 and Repo.objects.filter(pk=songs.repo.pk).exists()
    page = client.get(f"{songs.url}/proposals/new").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    reply = client.post(
        f"{songs.url}/proposals/new",
        {"title": "x", "from_branch": "feature", "to_branch": "main", "csrfmiddlewaretoken": token},
    )
    assert reply.status_code == 302 and Proposal.objects.filter(repo=songs.repo).count() == 1


def test_a_post_to_the_repository_url_stays_the_json_404_of_unknown_urls(client, songs):
    reply = client.post(songs.url, b"x", content_type="application/octet-stream")
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"


# --- proposals -------------------------------------------------------------------------------------


def test_open_edit_close_reopen_and_merge_a_proposal_in_the_browser(songs):
    client = signed_in(songs.owner)
    form = client.get(f"{songs.url}/proposals/new?from=feature").content.decode()
    assert '<option value="feature" selected>' in form
    reply = client.post(
        f"{songs.url}/proposals/new",
        {"title": "Brackets", "body": "Use *brackets*.", "from_branch": "feature", "to_branch": "main"},
    )
    assert reply["Location"].endswith("/proposals/1")
    detail = client.get(f"{songs.url}/proposals/1").content.decode()
    assert "<em>brackets</em>" in detail and "1 commit<" in detail and "Merge into main" in detail
    client.post(f"{songs.url}/proposals/1/edit", {"title": "Square brackets", "body": "x"})
    assert Proposal.objects.get(repo=songs.repo, number=1).title == "Square brackets"
    client.post(f"{songs.url}/proposals/1/close")
    assert Proposal.objects.get(repo=songs.repo, number=1).state == "closed"
    assert "Closed (1)" in client.get(f"{songs.url}/proposals?state=closed").content.decode()
    client.post(f"{songs.url}/proposals/1/reopen")
    assert Proposal.objects.get(repo=songs.repo, number=1).state == "open"
    reply = client.post(f"{songs.url}/proposals/1/merge", {"strategy": "fast-forward"})
    assert reply.status_code == 302
    proposal = Proposal.objects.get(repo=songs.repo, number=1)
    assert proposal.state == "merged" and proposal.merge_strategy == "fast-forward"
    assert Branch.objects.get(repo=songs.repo, name="main").head_commit_id == songs.feature["commit_id"]
    assert "Merged." in client.get(f"{songs.url}/proposals/1").content.decode()


def test_a_bad_proposal_form_says_why(songs):
    client = signed_in(songs.owner)
    reply = client.post(f"{songs.url}/proposals/new", {"title": "Same", "from_branch": "main", "to_branch": "main"})
    assert reply.status_code == 200 and "must differ" in reply.content.decode()
    assert not Proposal.objects.filter(repo=songs.repo).exists()


def test_readers_may_open_proposals_but_not_merge_them(songs):
    reader = make_user(f"r-{uid()}")
    client = signed_in(reader)
    client.post(f"{songs.url}/proposals/new", {"title": "Please", "from_branch": "feature", "to_branch": "main"})
    assert Proposal.objects.get(repo=songs.repo, number=1).author == reader.username
    detail = client.get(f"{songs.url}/proposals/1").content.decode()
    assert "Merge into" not in detail and ">Close</button>" in detail  # the author may close it
    reply = client.post(f"{songs.url}/proposals/1/merge", {"strategy": "merge"})
    assert reply.status_code == 403
    assert Proposal.objects.get(repo=songs.repo, number=1).state == "open"
    assert Branch.objects.get(repo=songs.repo, name="main").head_commit_id == songs.main["commit_id"]
    anonymous = Client().post(f"{songs.url}/proposals/1/merge", {"strategy": "merge"})
    assert anonymous.status_code == 302 and "/accounts/login" in anonymous["Location"]


def test_a_conflicting_proposal_lists_its_conflicts_and_cannot_be_merged(songs):
    main_files = {"src/play.py": b"main version\n"}
    other = songs.history.commit(main_files, parents=[songs.main["commit_id"]], message="Main edit")
    push_history(songs.repo, songs.history, commits=[other], branch="main")
    create_proposal(songs.repo.repo_id, title="Clash", from_branch="feature", to_branch="main", acting_user=songs.owner)
    client = signed_in(songs.owner)
    detail = client.get(f"{songs.url}/proposals/1").content.decode()
    assert "conflict" in detail and "<code>src/play.py</code>" in detail
    reply = client.post(f"{songs.url}/proposals/1/merge", {"strategy": "merge"}, follow=True)
    assert "conflict" in reply.content.decode().lower()
    assert Proposal.objects.get(repo=songs.repo, number=1).state == "open"


# --- settings --------------------------------------------------------------------------------------


def test_settings_change_description_visibility_and_default_branch(songs):
    client = signed_in(songs.owner)
    reply = client.post(
        f"{songs.url}/settings",
        {"action": "update", "description": "Now private", "visibility": "private", "default_branch": "feature"},
    )
    assert reply.status_code == 302
    repo = Repo.objects.get(pk=songs.repo.pk)
    assert (repo.description, repo.visibility, repo.default_branch) == ("Now private", "private", "feature")
    refused = client.post(
        f"{songs.url}/settings",
        {"action": "update", "description": "", "visibility": "public", "default_branch": "nope"},
    )
    assert refused.status_code == 400 and Repo.objects.get(pk=songs.repo.pk).default_branch == "feature"


def test_settings_add_change_and_remove_collaborators(songs):
    bob = make_user(f"bob-{uid()}")
    client = signed_in(songs.owner)
    client.post(f"{songs.url}/settings", {"action": "collaborator", "username": bob.username, "role": "read"})
    assert Collaborator.objects.get(repo=songs.repo, user=bob).role == "read"
    client.post(f"{songs.url}/settings", {"action": "collaborator", "username": bob.username, "role": "write"})
    assert Collaborator.objects.get(repo=songs.repo, user=bob).role == "write"
    unknown = client.post(f"{songs.url}/settings", {"action": "collaborator", "username": "nobody-x", "role": "read"})
    assert "No user named" in unknown.content.decode()
    client.post(f"{songs.url}/settings", {"action": "remove", "username": bob.username})
    assert not Collaborator.objects.filter(repo=songs.repo, user=bob).exists()


def test_deleting_a_repository_needs_its_name_typed(songs):
    client = signed_in(songs.owner)
    wrong = client.post(f"{songs.url}/settings", {"action": "delete", "confirm": "songs"})
    assert wrong.status_code == 400 and Repo.objects.filter(pk=songs.repo.pk).exists()
    done = client.post(f"{songs.url}/settings", {"action": "delete", "confirm": songs.repo.full_name})
    assert done.status_code == 302 and not Repo.objects.filter(pk=songs.repo.pk).exists()
    assert client.get(songs.url).status_code == 404


# --- accounts --------------------------------------------------------------------------------------


def test_sign_in_and_out_with_a_password(songs):
    client = Client()
    page = client.get("/accounts/login").content.decode()
    assert 'name="username"' in page
    refused = client.post("/accounts/login", {"username": songs.owner.username, "password": "wrong"})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    reply = client.post("/accounts/login", {"username": songs.owner.username, "password": "pw", "next": songs.url})
    assert reply["Location"] == songs.url and "_auth_user_id" in client.session
    client.post("/accounts/logout")
    assert "_auth_user_id" not in client.session


def test_tokens_are_shown_once_and_can_be_revoked(songs):
    client = signed_in(songs.owner)
    assert Client().get("/accounts/tokens")["Location"].startswith("/accounts/login")
    reply = client.post("/accounts/tokens", {"action": "create", "name": "laptop", "expires_days": "30"})
    assert "no-store" in reply["Cache-Control"], "the page showing a token is never cached"
    created = reply.content.decode()
    token = re.search(r'<pre id="new-token">(mh_[^<]+)</pre>', created).group(1)
    listed = client.get("/accounts/tokens").content.decode()
    assert token not in listed and token[:10] in listed and "laptop" in listed
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get(f"/api/v1/repos/{songs.repo.owner}/{songs.repo.slug}").status_code == 200
    client.post("/accounts/tokens", {"action": "revoke", "prefix": token[:10]})
    assert "revoked" in client.get("/accounts/tokens").content.decode()
    assert api.get(f"/api/v1/repos/{songs.repo.owner}/{songs.repo.slug}/branches").status_code == 401


def test_creating_a_token_long_after_signing_in_asks_for_the_password_again(songs):
    from repos.models import ApiToken
    from web.views.accounts import VERIFIED_AT

    client = signed_in(songs.owner)  # make_user's password is "pw"
    session = client.session
    session[VERIFIED_AT] = time.time() - 3600  # this session signed in an hour ago
    session.save()
    signed_in(songs.owner)  # a sign-in elsewhere just now (last_login is fresh) does not make this session fresh
    assert 'type="password"' in client.get("/accounts/tokens").content.decode()
    count = ApiToken.objects.filter(user=songs.owner).count
    before = count()
    missing = client.post("/accounts/tokens", {"action": "create", "name": "stale"})
    assert missing.status_code == 400 and "Confirm your password" in missing.content.decode()
    wrong = client.post("/accounts/tokens", {"action": "create", "name": "stale", "password": "nope"})
    assert wrong.status_code == 400 and "That password is not right" in wrong.content.decode()
    assert count() == before
    right = client.post("/accounts/tokens", {"action": "create", "name": "fresh", "password": "pw"})
    assert right.status_code == 200 and 'id="new-token"' in right.content.decode() and count() == before + 1
    again = client.post("/accounts/tokens", {"action": "create", "name": "next"})  # given just now: not asked
    assert again.status_code == 200 and count() == before + 2


def test_a_user_cannot_revoke_someone_elses_token(songs):
    from repos.services.tokens import issue_token

    row, _ = issue_token(songs.owner, name="mine")
    signed_in(make_user(f"mallory-{uid()}")).post("/accounts/tokens", {"action": "revoke", "prefix": row.prefix})
    row.refresh_from_db()
    assert row.revoked_at is None


# --- queries ---------------------------------------------------------------------------------------


def test_pages_run_a_bounded_number_of_queries(client, songs, django_assert_max_num_queries):
    create_proposal(songs.repo.repo_id, title="P", from_branch="feature", to_branch="main", acting_user=songs.owner)
    owner = signed_in(songs.owner)
    readmodel.clear_caches()
    for url in [
        *page_urls(songs),
        f"{songs.url}/proposals/1",
        f"{songs.url}/settings",
        "/",
        f"/{songs.owner.username}",
    ]:
        with django_assert_max_num_queries(20):
            assert owner.get(url).status_code == 200, url


def test_a_big_directory_is_paginated_and_a_page_reads_no_manifest_once_indexed(client):
    owner = make_user(f"big-{uid()}")
    from tests.factories import make_repo

    repo = make_repo(owner, f"big-{uid()}")
    files = {f"dir/f{i:04d}.txt": f"{i}".encode() for i in range(650)}
    history = History()
    history.commit(files)
    push_history(repo, history)
    url = f"/{repo.owner}/{repo.slug}/tree/main/dir"
    first = client.get(url).content.decode()
    assert "f0000.txt" in first and "f0299.txt" in first and "f0300.txt" not in first and "Page 1 of 3" in first
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        third = client.get(url + "?page=3").content.decode()
    assert "f0600.txt" in third and "f0649.txt" in third and "f0599.txt" not in third
    assert not any("manifest_blob" in q["sql"] for q in queries.captured_queries)
    assert len(queries.captured_queries) <= 10  # the same few queries however big the directory


def test_text_over_the_page_limit_is_a_download_and_a_diff_over_its_limit_a_summary(client, songs, monkeypatch):
    monkeypatch.setattr(readmodel, "TEXT_MAX_BYTES", 10)
    monkeypatch.setattr(readmodel, "DIFF_MAX_BYTES", 10)
    page = client.get(f"{songs.url}/blob/main/src/play.py").content.decode()
    assert "too large to show here" in page and 'id="L1"' not in page and "Download it" in page
    bare = songs.feature["commit_id"].removeprefix("sha256:")
    commit = client.get(f"{songs.url}/commit/{bare}").content.decode()
    assert "Diff too large to show" in commit and "[%s]" not in commit  # play.py (46 bytes) is not diffed
    assert f"/raw/{bare}/src/play.py" in commit  # the "raw" link of the changed file


def test_a_long_diff_is_cut_short_with_a_note(client, songs, monkeypatch):
    monkeypatch.setattr(readmodel, "DIFF_MAX_LINES", 3)
    bare = songs.feature["commit_id"].removeprefix("sha256:")
    commit = client.get(f"{songs.url}/commit/{bare}").content.decode()
    assert "Diff cut short" in commit


def test_a_bad_query_is_an_html_page_with_the_domains_sentence(client, songs):
    reply = client.get(f"{songs.url}/proposals?state=bogus")
    assert reply.status_code == 400 and reply["Content-Type"].startswith("text/html")
    assert "state must be one of open, merged, closed." in reply.content.decode()
    bad_merge = signed_in(songs.owner).post(f"{songs.url}/proposals/9/merge", {"strategy": "octopus"})
    assert bad_merge.status_code == 400 and "Choose a merge strategy" in bad_merge.content.decode()


def test_compare_says_whether_the_base_moved_since_the_fork(client, songs):
    fast = client.get(f"{songs.url}/compare/main...feature").content.decode()
    assert "merging can fast-forward" in fast
    moved = client.get(f"{songs.url}/compare/feature...main").content.decode()
    assert "main has 0 commits feature lacks" in moved and "merging needs a merge commit" in moved


def test_relative_links_and_images_in_markdown_point_into_the_repository(client):
    owner = make_user(f"doc-{uid()}")
    from tests.factories import make_repo

    repo = make_repo(owner, f"docs-{uid()}")
    readme = b"# Docs\n\n[Guide](guide.md#intro) ![Cover](../cover.png) [Out](../../../etc/passwd)\n"
    history = History()
    history.commit({"docs/README.md": readme, "docs/guide.md": b"# Guide\n", "cover.png": b"png"})
    push_history(repo, history)
    base = f"/{repo.owner}/{repo.slug}"
    for url in (f"{base}/tree/main/docs", f"{base}/blob/main/docs/README.md"):
        html = client.get(url).content.decode()
        assert f'href="{base}/blob/main/docs/guide.md#intro"' in html, url
        assert f'src="/api/v1/repos/{repo.owner}/{repo.slug}/raw/main/cover.png"' in html, url
        assert ">Out</a>" in html and not any("passwd" in h for h in re.findall(r'href="([^"]*)"', html))


def test_images_and_downloads_of_a_private_repository_load_with_the_session(client):
    secret = make_songs(visibility="private")
    raw = f"/api/v1/repos/{secret.repo.owner}/{secret.repo.slug}/raw/main/cover.png"
    assert f'src="{raw}"' in signed_in(secret.owner).get(f"{secret.url}/blob/main/cover.png").content.decode()
    assert signed_in(secret.owner).get(raw).status_code == 200
    assert client.get(raw).status_code == 404


def test_a_log_filtered_by_a_busy_path_compares_only_what_its_page_needs(client):
    owner = make_user(f"busy-{uid()}")
    from tests.factories import make_repo

    repo = make_repo(owner, f"busy-{uid()}")
    history, parents = History(), []
    for i in range(230):
        parents = [history.commit({"a.txt": f"{i}\n".encode(), "b.txt": b"same\n"}, parents=parents)["commit_id"]]
    push_history(repo, history)
    log = readmodel.CommitLog(parents[0], path="a.txt")
    rows, more = log.page(1, 50)
    assert len(rows) == 50 and more and log.scanned == readmodel.CommitLog.CHUNK and log.total is None
    rows, more = log.page(5, 50)
    assert len(rows) == 30 and not more and log.total == 230  # every commit wrote a.txt (the root added it)
    url = f"/{repo.owner}/{repo.slug}/commits/main?path=a.txt"
    first = client.get(url).content.decode()
    assert "Page 1<" in first and 'rel="next"' in first and "(230)" not in first
    last = client.get(url + "&page=5").content.decode()
    assert 'rel="next"' not in last and 'rel="prev"' in last and "(230)" in last
    assert "(1)" in client.get(f"/{repo.owner}/{repo.slug}/commits/main?path=b.txt").content.decode()


def test_the_branch_switcher_lists_at_most_a_hundred_branches(client, songs):
    from django.db import transaction

    from repos.services.repos import move_branch

    with transaction.atomic():
        for i in range(105):
            move_branch(songs.repo, f"topic-{i:03d}", songs.main["commit_id"])
    html = client.get(songs.url).content.decode()
    switcher = html.split('class="switcher"')[1].split("</details>")[0]
    assert switcher.count("<li>") == 101 and "All 107 branches" in switcher
    assert "107 branches" in html


def test_a_renamed_repositorys_old_pages_redirect_to_its_new_name(client, songs):
    from repos.services.repos import rename_repo

    old = songs.url
    rename_repo(songs.repo, acting_user=songs.owner, new_slug=f"renamed-{uid()}")
    new = f"/{songs.owner.username}/{Repo.objects.get(pk=songs.repo.pk).slug}"
    reply = client.get(f"{old}/blob/main/src/play.py?plain=1")
    assert reply.status_code == 302 and reply["Location"] == f"{new}/blob/main/src/play.py?plain=1"
    assert client.get(old)["Location"] == new
    assert client.get(reply["Location"]).status_code == 200
    secret = make_songs(visibility="private")
    rename_repo(secret.repo, acting_user=secret.owner, new_slug=f"hidden-{uid()}")
    assert client.get(secret.url).status_code == 404  # a private repository's new name is not revealed
