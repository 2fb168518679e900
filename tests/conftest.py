"""Test settings and shared fixtures.

Every test gets its own filesystem mpack store under ``tmp_path``. Tests that
take ``backend`` run once per storage backend: the filesystem, and a real HTTP
S3 endpoint (moto's server on 127.0.0.1, started once per session) reached
through django-storages exactly as MinIO would be.
"""

from __future__ import annotations

import socket

import boto3
import pytest

from repos.storage.backend import get_backend

S3_BUCKET = "musehub-test"
S3_KEYS = {"access_key": "testing", "secret_key": "testing"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """Start moto's S3 server on a free loopback port and return its URL."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=S3_KEYS["access_key"],
        aws_secret_access_key=S3_KEYS["secret_key"],
    ).create_bucket(Bucket=S3_BUCKET)
    yield url
    server.stop()


def filesystem_storages(location) -> dict:
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(location), "allow_overwrite": True},
    }


def s3_storages(endpoint: str, prefix: str) -> dict:
    return {
        "BACKEND": "repos.storage.s3.HubS3Storage",  # the class settings.py names for S3 and MinIO
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "location": prefix,
            "addressing_style": "path",
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            **S3_KEYS,
        },
    }


def _use_mpack_storage(settings, config: dict) -> None:
    settings.STORAGES = {**settings.STORAGES, "mpacks": config}
    get_backend.cache_clear()


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Give every test an empty filesystem mpack store of its own."""
    _use_mpack_storage(settings, filesystem_storages(tmp_path / "storage"))
    yield
    get_backend.cache_clear()


@pytest.fixture(params=["filesystem", "s3"])
def backend(request, settings, tmp_path):
    """Run the test once against each storage backend; return the active MPackStore."""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        _use_mpack_storage(settings, s3_storages(endpoint, f"t-{tmp_path.name}"))
    return get_backend()


@pytest.fixture
def s3_backend(settings, tmp_path, s3_endpoint):
    _use_mpack_storage(settings, s3_storages(s3_endpoint, f"t-{tmp_path.name}"))
    return get_backend()
