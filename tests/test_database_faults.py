"""The database under faults: outages answer 503 JSON with Retry-After; concurrent pushes of shared content never deadlock."""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection

from musehub_core.ids import blob_id
from tests.factories import History, build_pack, make_repo, stage_mpack, uid
from wire.push import wire_push_unpack_mpack


def _refuse_connections():
    """Point the connection at a port nothing listens on (PostgreSQL), so every new connection is refused."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", "1"
    return saved


def _restore(saved) -> None:
    connection.close()
    connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", ["/{repo}/refs", "/api/v1/repos/{repo}", "/api/v1/repos/{repo}/branches", "/health/ready"]
)
def test_a_database_that_refuses_connections_answers_503_json_with_retry_after(client, path):
    repo = make_repo()
    url = path.format(repo=f"{repo.owner}/{repo.slug}")
    if connection.vendor == "postgresql":
        saved = _refuse_connections()
        try:
            reply = client.get(url, HTTP_ACCEPT="application/json")
        finally:
            _restore(saved)
    else:  # SQLite has no server to stop: fail every statement the way a lost database does

        def refuse(execute, sql, params, many, context):
            raise OperationalError("unable to open database file")

        with connection.execute_wrapper(refuse):
            reply = client.get(url, HTTP_ACCEPT="application/json")
    assert reply.status_code == 503
    assert reply["Content-Type"].startswith("application/json")
    if path != "/health/ready":
        assert reply.json()["error"] == "database_unavailable"
        assert int(reply["Retry-After"]) > 0
    assert client.get(url, HTTP_ACCEPT="application/json").status_code == 200, "the hub recovers by itself"


@pytest.mark.django_db(transaction=True)
def test_pushes_of_the_same_blobs_into_eight_repositories_at_once_all_succeed():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers; the deadlock this guards against is PostgreSQL's.")
    blobs = {blob_id(content): content for content in {f"shared blob {i} {uid()}".encode() for i in range(1500)}}
    files = {f"f{i}.txt": content for i, content in enumerate(blobs.values())}
    pushes = []
    for _ in range(8):
        repo = make_repo()
        history = History()
        commit = history.commit(files)
        data = build_pack(
            [commit], history.snapshots, dict(reversed(list(blobs.items()))) if len(pushes) % 2 else blobs
        )
        pushes.append((repo, stage_mpack(repo, data), commit))
    barrier = threading.Barrier(len(pushes))
    outcomes: list[object] = []

    def push(repo, key, commit) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes.append(
                wire_push_unpack_mpack(
                    repo,
                    key,
                    "gabriel",
                    branch="main",
                    head_commit_id=commit["commit_id"],
                    commits_count=1,
                    blobs_count=len(blobs),
                )["ok"]
            )
        except Exception as exc:  # the outcome is what the test checks
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=push, args=p) for p in pushes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert outcomes == [True] * len(pushes), [o for o in outcomes if o is not True][:2]
