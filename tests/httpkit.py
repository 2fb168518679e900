"""An in-process HTTP caller for the wire API (Django's test client, msgpack bodies)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgpack
from django.test import Client

from repos import models
from repos.services.tokens import issue_token

CONTENT_TABLES = (
    models.Commit, models.CommitRef, models.CommitGraph, models.Snapshot, models.SnapshotRef,
    models.Object, models.ObjectRef, models.MPackIndex, models.MPack, models.Branch,
)  # fmt: skip


def row_counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in CONTENT_TABLES}


@dataclass
class Reply:
    status: int
    headers: Any
    content: bytes

    @property
    def data(self) -> Any:
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(self.content)
        return msgpack.unpackb(self.content, raw=False)


class WireCaller:
    """Call wire endpoints as a client would: msgpack in and out, an optional Bearer token."""

    def __init__(self, token: str | None = None, *, native: bool = True) -> None:
        self.client = Client()
        self.token = token
        self.native = native

    def headers(self, extra: dict | None = None) -> dict:
        headers = {"Accept": "application/x-msgpack"}
        if self.native:
            headers["X-Muse-Protocol"] = "mpack"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, headers=None) -> Reply:
        data = raw if raw is not None else (msgpack.packb(body, use_bin_type=True) if body is not None else b"")
        response = self.client.generic(
            method, path, data=data, content_type="application/x-msgpack", headers=self.headers(headers)
        )
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return Reply(response.status_code, response.headers, content)

    def get(self, path: str, **kwargs) -> Reply:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs) -> Reply:
        return self.call("POST", path, body, **kwargs)

    def put_url(self, url: str, data: bytes, content_type: str = "application/octet-stream") -> Reply:
        """PUT to a signed storage URL (no token, as clients do)."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = Client().generic("PUT", path, data=data, content_type=content_type)
        return Reply(response.status_code, response.headers, response.content)

    def get_url(self, url: str, headers: dict | None = None) -> Reply:
        parts = urlsplit(url)
        response = Client().get(parts.path, headers=headers or {})
        content = b"".join(response.streaming_content) if response.streaming else response.content
        return Reply(response.status_code, response.headers, content)


def token_for(user) -> str:
    return issue_token(user)[1]
