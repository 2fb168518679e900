"""What every HTTP face shares: one JSON error shape, one 401, a JSON catch-all, idempotent first pushes."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from repos.access import reserved_owners
from repos.models import Repo
from repos.services.repos import repo_for_push
from tests.factories import make_repo, make_user, uid

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path", ["/no/such/route/here", "/api/v1/nothing", "/alice/songs/no-such-endpoint", "/alice/songs/mpack/nope"]
)
def test_an_unmatched_url_answers_json_even_in_debug_mode(client, settings, debug, path):
    settings.DEBUG = debug
    reply = client.get(path)
    assert reply.status_code == 404
    assert reply["Content-Type"].startswith("application/json")
    assert reply.json()["error"] == "not_found" and path in reply.json()["detail"]


@pytest.mark.parametrize("header", ["Bearer mh_not-a-real-token", "Bearer", "Bearer a b"])
def test_every_401_has_one_code_and_a_www_authenticate_header(client, header):
    repo = make_repo(visibility="private")
    reply = client.post(
        f"/{repo.owner}/{repo.slug}/mpack/fetch",
        {"want": []},
        content_type="application/json",
        HTTP_AUTHORIZATION=header,
    )
    assert reply.status_code == 401
    assert reply.json()["error"] == "unauthenticated"
    assert reply["WWW-Authenticate"].startswith("Bearer")


def test_an_anonymous_push_is_401_with_the_same_code(client):
    reply = client.post(
        f"/alice-{uid()}/new/mpack/upload",
        {"mpack_key": "sha256:" + "a" * 64, "size": 1},
        content_type="application/json",
    )
    assert reply.status_code == 401 and reply.json()["error"] == "unauthenticated" and "WWW-Authenticate" in reply


def test_reserved_owner_names_come_from_the_route_table():
    assert {"admin", "api", "health", "metrics", "_storage", "static"} <= reserved_owners()
    assert not {"alice", "songs"} & reserved_owners()


@pytest.mark.django_db(transaction=True)
def test_racing_first_pushes_to_a_new_repository_all_get_it():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's shared in-memory test database reports table locks instead of waiting.")
    user = make_user(f"racer-{uid()}")
    slug = f"new-{uid()}"
    barrier = threading.Barrier(8)
    found: list[object] = []

    def push() -> None:
        try:
            barrier.wait(timeout=30)
            found.append(repo_for_push(acting_user=user, owner=user.username, slug=slug).repo_id)
        except Exception as exc:  # the outcome is what the test checks
            found.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 8 and all(isinstance(r, str) for r in found), found
    assert set(found) == {Repo.objects.get(owner=user.username, slug=slug).repo_id}


@pytest.mark.parametrize("path", ["/alice/songs/mpack/fetch", "/api/v1/repos", "/_storage/anything"])
def test_a_chunked_request_body_is_refused_with_411_instead_of_read_as_empty(client, path):
    reply = client.post(path, b"", content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    assert reply.status_code == 411
    assert reply.json()["error"] == "length_required" and "Content-Length" in reply.json()["detail"]


def test_the_proxy_answers_its_own_limits_in_the_hubs_json_shape():
    """gunicorn answers over-long request lines and headers with HTML; the proxy in front refuses them first, as JSON."""
    import json
    import re
    from pathlib import Path

    deploy = Path(__file__).resolve().parent.parent / "deploy"
    nginx = (deploy / "nginx.conf").read_text()
    buffers = re.search(r"large_client_header_buffers\s+\d+\s+(\d+)k;", nginx)
    gunicorn_line = re.search(r"limit_request_line\s*=\s*(\d+)", (deploy / "gunicorn.conf.py").read_text())
    assert buffers and gunicorn_line and int(buffers.group(1)) * 1024 <= int(gunicorn_line.group(1)) + 2
    for status in ("400", "413", "414"):
        target = re.search(rf"error_page[^;]*\b{status}\b[^;]*=\s*(@\w+);", nginx)
        assert target, f"no error_page for {status}"
        body = re.search(rf"location {target.group(1)} \{{[^}}]*return {status} '([^']+)';", nginx)
        assert body, f"{target.group(1)} does not answer {status}"
        answer = json.loads(body.group(1))
        assert set(answer) == {"error", "detail"} and answer["detail"].endswith(".")
