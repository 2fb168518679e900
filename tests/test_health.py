"""Health: liveness answers without the database; readiness checks the database and the storage bucket."""

from __future__ import annotations

import pytest
from botocore.config import Config
from django.db import OperationalError, connection

from repos.access import reserved_owners
from tests.conftest import _free_port, _use_mpack_storage, s3_storages


def test_health_answers_200_ok_without_touching_the_database(client):
    # No django_db mark: any database query here would fail the test.
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "ok"}
    assert client.head("/health").status_code == 200, "load balancers may probe with HEAD"


def test_health_and_metrics_are_reserved_owner_names():
    assert {"health", "metrics"} <= reserved_owners()


@pytest.mark.django_db
def test_ready_when_the_database_and_storage_answer(client, backend):
    reply = client.get("/health/ready")
    assert reply.status_code == 200, reply.content
    assert reply.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


@pytest.mark.django_db
def test_ready_is_503_naming_storage_when_the_bucket_is_unreachable(client, settings, tmp_path):
    unreachable = s3_storages(f"http://127.0.0.1:{_free_port()}", "nowhere")
    unreachable["OPTIONS"]["client_config"] = Config(
        connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}, s3={"addressing_style": "path"}
    )
    _use_mpack_storage(settings, unreachable)
    reply = client.get("/health/ready")
    assert reply.status_code == 503
    body = reply.json()
    assert body["failed"] == ["storage"]
    assert body["checks"] == {"database": "ok", "storage": "unavailable"}
    assert client.get("/health").status_code == 200, "liveness does not depend on storage"


def refuse(*args, **kwargs):
    raise OperationalError("connection refused")


@pytest.mark.django_db
def test_ready_is_503_naming_the_database_when_it_is_unreachable(client, monkeypatch):
    monkeypatch.setattr(connection, "cursor", refuse)
    reply = client.get("/health/ready")
    assert reply.status_code == 503
    assert reply.json()["failed"] == ["database"]
    assert reply.json()["checks"]["storage"] == "ok"


@pytest.mark.django_db
def test_ready_names_both_when_both_fail(client, settings, monkeypatch):
    unreachable = s3_storages(f"http://127.0.0.1:{_free_port()}", "nowhere")
    unreachable["OPTIONS"]["client_config"] = Config(connect_timeout=1, retries={"max_attempts": 1})
    _use_mpack_storage(settings, unreachable)
    monkeypatch.setattr(connection, "cursor", refuse)
    reply = client.get("/health/ready")
    assert reply.status_code == 503 and reply.json()["failed"] == ["database", "storage"]
