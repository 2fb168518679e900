"""Structured logs: JSON lines in production, one line per request and per push or fetch, never a token."""

from __future__ import annotations

import io
import json
import logging

import pytest

from musehub.logs import JsonFormatter, redact
from musehub_core.ids import blob_id
from tests.deploykit import PRODUCTION_ENV, django_process
from tests.factories import History, build_pack, make_user, uid
from tests.httpkit import WireCaller, token_for


@pytest.fixture
def json_log():
    """Capture the hub's log records as production writes them: JSON lines at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    hub, requests_log = logging.getLogger("musehub"), logging.getLogger("musehub.request")
    levels = hub.level, requests_log.level
    hub.addHandler(handler)
    hub.setLevel(logging.INFO)
    requests_log.setLevel(logging.INFO)
    yield stream
    hub.removeHandler(handler)
    hub.setLevel(levels[0])
    requests_log.setLevel(levels[1])


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_a_push_logs_json_request_and_push_lines_without_the_token(json_log):
    alice = make_user(f"alice-{uid()}")
    token = token_for(alice)
    caller = WireCaller(token)
    path = f"/{alice.username}/logged-{uid()}"
    history = History()
    history.commit({"a.txt": b"logged content"})
    data = build_pack(history.commits, history.snapshots, history.blobs)
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert caller.put_url(slot.data["upload_url"], data).status == 200
    reply = caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": history.commits[-1]["commit_id"],
         "force": False, "commits_count": 1, "blobs_count": 1},
    )  # fmt: skip
    assert reply.status == 200
    assert WireCaller("mh_" + "x" * 43).get(f"{path}/refs").status == 401

    output = json_log.getvalue()
    assert token not in output and token[3:] not in output, "the token never reaches a log"
    assert "x" * 43 not in output, "not even a rejected one"
    assert "/_storage/" not in output.replace("/_storage/[redacted]", ""), "signed storage URLs are masked"
    records = lines(json_log)
    push = next(r for r in records if r.get("event") == "push")
    assert push["repo"] == f"{alice.username}/{path.rsplit('/', 1)[1]}"
    assert push["user"] == alice.username and push["outcome"] == "ok" and push["protocol"] == "mpack"
    assert push["bytes"] == len(data) and push["commits"] == 1 and push["blobs"] == 1
    assert push["duration_ms"] >= 0 and push["level"] == "INFO" and push["logger"] == "musehub.push"
    request = next(r for r in records if r.get("event") == "request" and r["route"] == "mpack-push")
    assert request["status"] == 200 and request["method"] == "POST" and request["user"] == alice.username
    assert request["owner"] == alice.username and request["repo"] == path.rsplit("/", 1)[1]
    assert request["bytes_in"] > 0 and request["bytes_out"] > 0 and request["duration_ms"] >= 0
    assert request["request_id"] == push["request_id"], "the push line belongs to its request"
    refused = next(r for r in records if r.get("event") == "request" and r["status"] == 401)
    assert refused["user"] == "-"


@pytest.mark.django_db
def test_a_failed_push_logs_its_error_code(json_log):
    alice = make_user(f"alice-{uid()}")
    caller = WireCaller(token_for(alice))
    reply = caller.post(
        f"/{alice.username}/nothing-{uid()}/mpack/push",
        {"mpack_key": blob_id(b"never uploaded"), "branch": "main", "head_commit_id": "", "force": False,
         "commits_count": 0, "blobs_count": 0},
    )  # fmt: skip
    assert reply.status == 404
    push = next(r for r in lines(json_log) if r.get("event") == "push")
    assert push["outcome"] == "unknown_mpack" and push["level"] == "WARNING"


@pytest.mark.django_db
def test_a_request_id_from_the_proxy_is_kept_and_echoed(json_log):
    reply = WireCaller().get(f"/nobody-{uid()}/none/refs", headers={"X-Request-ID": "proxy-abc-123"})
    assert reply.headers["X-Request-ID"] == "proxy-abc-123"
    assert lines(json_log)[-1]["request_id"] == "proxy-abc-123"
    odd = WireCaller().get(f"/nobody-{uid()}/none/refs", headers={"X-Request-ID": "bad id\nwith newline"})
    assert odd.headers["X-Request-ID"] != "bad id\nwith newline"


def test_redact_masks_tokens_and_signatures():
    assert redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer [redacted]"
    assert redact("token mh_AbCdEf0123456789xyz leaked") == "token [redacted] leaked"
    assert redact("GET /_storage/eyJuIjoi:1abc:xyz 200") == "GET /_storage/[redacted] 200"
    assert redact("https://s3/x?X-Amz-Credential=AK/1&X-Amz-Signature=f00d") == (
        "https://s3/x?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]"
    )
    assert redact("The token has expired.") == "The token has expired."


def test_production_logging_writes_json_lines(tmp_path):
    script = (
        "import logging; "
        "logging.getLogger('musehub.push').info('push a/b ok', extra={'repo': 'a/b', 'bytes': 3}); "
        "logging.getLogger('musehub.errors').error('oops Authorization: Bearer mh_supersecret0123456789')"
    )
    result = django_process(tmp_path, script, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records[0]["message"] == "push a/b ok" and records[0]["repo"] == "a/b" and records[0]["bytes"] == 3
    assert records[1]["level"] == "ERROR" and "mh_supersecret" not in result.stderr


def test_development_logging_stays_plain_text(tmp_path):
    result = django_process(tmp_path, "import logging; logging.getLogger('musehub.push').info('hello', extra={'a': 1})")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "INFO musehub.push: hello a=1"
