"""Issue 25.12: to an anonymous visitor a private repository and a missing one make the same database work.

Their answers were already the same 404; their timing differed (4.20 ms against 4.88 ms) because only a
missing name was looked up among former names. Counting the queries holds the cause, not a timing.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_repo, make_user, uid

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("suffix", ["", "/commits", "/tree/main/", "/api"])
def test_a_private_and_a_missing_repository_make_the_same_queries(client, suffix):
    owner = make_user(f"t-{uid()}")
    secret = make_repo(owner, "secret", visibility="private")
    make_repo(owner, "open-one")
    urls = {
        "private": f"/{owner.username}/{secret.slug}",
        "missing": f"/{owner.username}/nothing-here",
    }
    if suffix == "/api":
        urls = {k: f"/api/v1/repos/{v.lstrip('/')}" for k, v in urls.items()}
    else:
        urls = {k: v + suffix for k, v in urls.items()}
    counts = {}
    for kind, url in urls.items():
        client.get(url)  # warm: the first request of a process loads things once
        with CaptureQueriesContext(connection) as queries:
            reply = client.get(url)
        assert reply.status_code == 404, (kind, url)
        counts[kind] = len(queries.captured_queries)
    assert counts["private"] == counts["missing"], counts
