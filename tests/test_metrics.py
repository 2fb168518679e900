"""Prometheus metrics at /metrics: requests per route, pushes and fetches, storage requests, errors by code."""

from __future__ import annotations

import pytest
import requests
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from musehub_core.ids import blob_id
from tests.factories import History, build_pack, make_user, uid
from tests.httpkit import WireCaller, token_for
from tests.mwpkit import LocalRepo

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset], float]


def scrape(**headers: str) -> Samples:
    reply = Client().get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.content
    assert reply["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def grew(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def alice():
    return make_user(f"alice-{uid()}")


def put(caller: WireCaller, url: str, data: bytes) -> int:
    """PUT to an upload URL: the hub's own (filesystem) or S3's presigned one."""
    if url.startswith("http") and "/_storage/" not in url:
        return requests.put(
            url, data=data, headers={"Content-Type": "application/octet-stream"}, timeout=30
        ).status_code
    return caller.put_url(url, data).status


def native_push(caller: WireCaller, path: str, history: History) -> tuple[int, int]:
    """Push the whole *history* over the native protocol; return (status, pack size)."""
    data = build_pack(history.commits, history.snapshots, history.blobs)
    slot = caller.post(f"{path}/mpack/upload", {"mpack_key": blob_id(data), "size": len(data)})
    assert slot.status == 200, slot.content
    assert put(caller, slot.data["upload_url"], data) == 200
    reply = caller.post(
        f"{path}/mpack/push",
        {"mpack_key": blob_id(data), "branch": "main", "head_commit_id": history.commits[-1]["commit_id"],
         "force": False, "commits_count": len(history.commits), "blobs_count": len(history.blobs)},
    )  # fmt: skip
    return reply.status, len(data)


def test_requests_are_counted_and_timed_by_route_name_never_by_raw_path(alice):
    before = scrape()
    Client().get("/health")
    WireCaller().get(f"/{alice.username}/some-repo-{uid()}/refs")
    after = scrape()
    assert grew(before, after, "musehub_http_requests_total", route="health", method="GET", status="200") == 1
    assert grew(before, after, "musehub_http_requests_total", route="refs", method="GET", status="404") == 1
    assert grew(before, after, "musehub_http_request_duration_seconds_count", route="refs", method="GET") == 1
    labels = {value for (_, labelset) in after for _, value in labelset}
    assert not any(alice.username in label for label in labels), "no path (owner, slug) ever becomes a label"


def test_unmatched_paths_share_one_label():
    before = scrape()
    Client().get(f"/no/such/route/{uid()}")
    after = scrape()
    assert grew(before, after, "musehub_http_requests_total", route="unmatched", method="GET", status="404") == 1


def test_errors_are_counted_by_code_and_status(alice):
    before = scrape()
    reply = WireCaller().get(f"/{alice.username}/missing-{uid()}/refs")
    assert reply.status == 404 and reply.data["error"] == "repo_not_found"
    WireCaller().post(f"/{alice.username}/x/mpack/upload", {"mpack_key": blob_id(b"x"), "size": 1})
    after = scrape()
    assert grew(before, after, "musehub_errors_total", code="repo_not_found", status="404") == 1
    assert grew(before, after, "musehub_errors_total", code="unauthenticated", status="401") == 1


def test_push_and_fetch_sizes_durations_and_storage_requests(alice, backend):
    caller = WireCaller(token_for(alice))
    path = f"/{alice.username}/metered-{uid()}"
    history = History()
    head = history.commit({"a.txt": b"hello " * 1000, "b.bin": bytes(range(256)) * 40})
    before = scrape()
    status, size = native_push(caller, path, history)
    assert status == 200
    fetched = caller.post(f"{path}/mpack/fetch", {"want": [head["commit_id"]], "have": []})
    assert fetched.status == 200
    after = scrape()

    assert grew(before, after, "musehub_pushes_total", protocol="mpack", outcome="ok") == 1
    assert grew(before, after, "musehub_push_size_bytes_count", protocol="mpack") == 1
    assert grew(before, after, "musehub_push_size_bytes_sum", protocol="mpack") == size
    assert grew(before, after, "musehub_push_duration_seconds_count", protocol="mpack") == 1
    assert grew(before, after, "musehub_fetches_total", protocol="mpack", outcome="ok") == 1
    assert grew(before, after, "musehub_fetch_size_bytes_sum", protocol="mpack") == fetched.data["size"]
    assert grew(before, after, "musehub_fetch_duration_seconds_count", protocol="mpack") == 1

    assert grew(before, after, "musehub_storage_requests_total", op="open_upload") == 1
    assert grew(before, after, "musehub_storage_bytes_total", op="open_upload") == size
    assert grew(before, after, "musehub_storage_requests_total", op="promote_upload") == 1
    assert grew(before, after, "musehub_storage_requests_total", op="put_mpack") == 1
    assert grew(before, after, "musehub_http_request_body_bytes_total", route="mpack-push") > 0


def test_a_rejected_push_is_counted_by_its_error_code(alice):
    caller = WireCaller(token_for(alice))
    path = f"/{alice.username}/rejected-{uid()}"
    first, other = History(), History()
    first.commit({"a": b"1"})
    other.commit({"a": b"2"})
    assert native_push(caller, path, first)[0] == 200
    before = scrape()
    assert native_push(caller, path, other)[0] == 409
    after = scrape()
    assert grew(before, after, "musehub_pushes_total", protocol="mpack", outcome="non_fast_forward") == 1
    assert grew(before, after, "musehub_errors_total", code="non_fast_forward", status="409") == 1
    assert grew(before, after, "musehub_push_size_bytes_count", protocol="mpack") == 0, "only stored pushes have a size"


def test_mwp_push_and_fetch_are_measured_too(alice):
    caller = WireCaller(token_for(alice), native=False)
    path = f"/{alice.username}/mwp-{uid()}"
    local = LocalRepo()
    head = local.commit({"song.mid": b"\x00\x01" * 500, "notes.txt": b"la"}, message="first")
    objects = [{"object_id": oid, "content": content} for oid, content in local.objects.items()]
    bundle = {"commits": local.bundle_from(head, set()), "snapshots": list(local.snapshots.values()), "objects": []}
    before = scrape()
    # As the muse CLI pushes: the objects first, then the bundle.
    assert caller.post(f"{path}/push/objects", {"objects": objects}).status == 200
    assert caller.post(f"{path}/push", {"bundle": bundle, "branch": "main", "force": False}).status == 200
    assert caller.post(f"{path}/fetch", {"want": [head], "have": []}).status == 200
    after = scrape()
    raw_bytes = sum(len(content) for content in local.objects.values())
    assert grew(before, after, "musehub_pushes_total", protocol="mwp-objects", outcome="ok") == 1
    assert grew(before, after, "musehub_push_size_bytes_sum", protocol="mwp-objects") == raw_bytes
    assert grew(before, after, "musehub_pushes_total", protocol="mwp", outcome="ok") == 1
    assert grew(before, after, "musehub_fetches_total", protocol="mwp", outcome="ok") == 1
    assert grew(before, after, "musehub_fetch_size_bytes_sum", protocol="mwp") == raw_bytes


def test_metrics_token_switches_on_bearer_auth(settings):
    settings.MUSEHUB_METRICS_TOKEN = "scrape-secret"
    refused = Client().get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert "musehub_http_requests_total" in str(scrape(Authorization="Bearer scrape-secret"))


# --- who may scrape -----------------------------------------------------------------------------------


def test_without_a_token_only_direct_loopback_connections_are_answered():
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="::ffff:127.0.0.1").get("/metrics").status_code == 200
    unknown = Client(REMOTE_ADDR="127.0.0.1").get(f"/no/such/route/{uid()}")
    for address in ("203.0.113.5", "10.0.0.7", "::ffff:203.0.113.5", "2001:db8::1"):
        refused = Client(REMOTE_ADDR=address).get("/metrics")
        assert refused.status_code == 404, address
        assert refused.json()["error"] == unknown.json()["error"] == "not_found", "the same answer as no such URL"
        assert b"musehub_" not in refused.content


def test_a_request_that_came_through_a_proxy_is_not_let_in_by_its_address():
    # Behind a proxy on the same host, every client connects from 127.0.0.1: the proxy's headers give it away.
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        refused = Client(REMOTE_ADDR="127.0.0.1").get("/metrics", headers={header: "for=203.0.113.5"})
        assert refused.status_code == 404, header


def test_the_allowlist_names_the_scrapers_networks(settings):
    settings.MUSEHUB_METRICS_ALLOW = ["10.0.0.0/8", "2001:db8::/32"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="2001:db8::7").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404, "loopback is no longer listed"
    assert Client(REMOTE_ADDR="11.0.0.1").get("/metrics").status_code == 404


def test_a_token_opens_metrics_from_anywhere_and_is_then_always_required(settings):
    settings.MUSEHUB_METRICS_TOKEN = "scrape-secret"
    far = Client(REMOTE_ADDR="203.0.113.5")
    assert far.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    assert (
        far.get("/metrics", headers={"X-Forwarded-For": "1.2.3.4", "Authorization": "Bearer scrape-secret"}).status_code
        == 200
    )
    assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 401, "loopback without it: refused"


def test_the_allowlist_comes_from_the_environment_and_a_bad_entry_stops_the_server(tmp_path):
    from tests.deploykit import PRODUCTION_ENV, django_process

    show = "from django.conf import settings; print(settings.MUSEHUB_METRICS_ALLOW)"
    default = django_process(tmp_path, show, **PRODUCTION_ENV)
    assert default.returncode == 0 and default.stdout.strip() == "['127.0.0.0/8', '::1/128']", default.stderr
    listed = django_process(tmp_path, show, **PRODUCTION_ENV, MUSEHUB_METRICS_ALLOW="10.0.0.0/8, 192.168.1.5")
    assert listed.stdout.strip() == "['10.0.0.0/8', '192.168.1.5']"
    bad = django_process(tmp_path, show, **PRODUCTION_ENV, MUSEHUB_METRICS_ALLOW="10.0.0.0/8,intranet")
    assert bad.returncode != 0 and "MUSEHUB_METRICS_ALLOW holds 'intranet'" in bad.stderr
