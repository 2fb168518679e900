"""Two app servers, one PostgreSQL, one S3 endpoint: the production shape, with nothing local to a server.

Two real gunicorn processes (``deploy/gunicorn.conf.py``, production mode, two
workers each) serve the test database and the session's S3 endpoint. What one
server starts, the other finishes; pushes raced through both onto one branch
lose no update: exactly one wins, the other is told to fetch first.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import msgpack
import pytest
import requests
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from musehub_client.http import EXIT_CONFLICT, EXIT_OK
from tests.clientkit import tree_of
from tests.conftest import S3_BUCKET, S3_KEYS, _free_port
from tests.deploykit import Server
from tests.deploykit import start_server as start_process
from tests.factories import History, build_pack, make_user, uid
from tests.httpkit import token_for

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "two-servers-" + "k" * 40
ROUNDS = 3


def database_url() -> str:
    """Return the URL of the database this test runs on (pytest-django's test database)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"])
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_server(name: str, tmp_path: Path, s3_endpoint: str, prefix: str) -> Server:
    port = _free_port()
    home = tmp_path / name
    (home / "static").mkdir(parents=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MUSEHUB_", "DJANGO_", "DATABASE_URL", "PROMETHEUS_"))
    }
    env.update(
        MUSEHUB_ENV="production",
        DJANGO_SECRET_KEY=SECRET_KEY,
        MUSEHUB_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=database_url(),
        MUSEHUB_S3_BUCKET=S3_BUCKET,
        MUSEHUB_S3_ENDPOINT_URL=s3_endpoint,
        MUSEHUB_S3_ACCESS_KEY=S3_KEYS["access_key"],
        MUSEHUB_S3_SECRET_KEY=S3_KEYS["secret_key"],
        MUSEHUB_S3_PREFIX=prefix,
        MUSEHUB_DATA_DIR=str(home / "data"),  # each server's own disk: nothing may depend on it
        MUSEHUB_STATIC_ROOT=str(home / "static"),
        MUSEHUB_BIND=f"127.0.0.1:{port}",
        MUSEHUB_WORKERS="2",
        MUSEHUB_THREADS="4",
        PROMETHEUS_MULTIPROC_DIR=str(home / "metrics"),
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "musehub.wsgi"]
    return start_process(argv, f"http://127.0.0.1:{port}", env, home / "server.log")


def name_of(server: Server) -> str:
    return server.log.parent.name  # the folder start_server made for it: "a" or "b"


def wait_ready(server: Server, timeout: float = 60) -> None:
    """Wait until the server answers /health/ready with 200 (database and storage reached)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"server {name_of(server)} exited:\n{server.output()[-3000:]}")
        try:
            if requests.get(f"{server.url}/health/ready", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    pytest.fail(f"server {name_of(server)} was not ready within {timeout}s:\n{server.output()[-3000:]}")


@pytest.fixture
def servers(transactional_db, s3_endpoint, tmp_path):
    """Start servers A and B on one database and one bucket prefix; stop them before the database is flushed."""
    if connection.vendor != "postgresql":
        pytest.skip("several app servers share PostgreSQL (run with DATABASE_URL=postgres://…)")
    prefix = f"two-{uid()}"
    pair = [start_server(name, tmp_path, s3_endpoint, prefix) for name in ("a", "b")]
    try:
        for server in pair:
            wait_ready(server)
        yield pair
    finally:
        for server in pair:
            server.stop()


def run_client(*argv: str, token: str | None = None) -> subprocess.Popen:
    """Start the reference client (``python -m musehub_client``) as its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSEHUB_")}
    if token:
        env["MUSEHUB_TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-m", "musehub_client", *argv, "-q"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(process: subprocess.Popen) -> tuple[int, str]:
    _, err = process.communicate(timeout=120)
    return process.returncode, err


def state_head(root: Path) -> str:
    return json.loads((root / ".musehub" / "state.json").read_text())["head"]


def native(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/x-msgpack",
        "Content-Type": "application/x-msgpack",
        "X-Muse-Protocol": "mpack",
    }


def call(url: str, token: str, body: dict) -> requests.Response:
    return requests.post(url, data=msgpack.packb(body, use_bin_type=True), headers=native(token), timeout=60)


def heads(server: Server, repo_path: str) -> dict[str, str]:
    reply = requests.get(f"{server.url}{repo_path}/refs", headers={"X-Muse-Protocol": "mpack"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return msgpack.unpackb(reply.content, raw=False)["branch_heads"]


def scrape(server: Server) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{server.url}/metrics", timeout=30).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_app_servers_share_everything_and_race_pushes_without_losing_one(servers, tmp_path):
    a, b = servers
    alice = make_user(f"alice-{uid()}")
    token = token_for(alice)
    repo_path = f"/{alice.username}/shared-{uid()}"

    # Push through A, clone through B: byte-identical.
    source = tmp_path / "source"
    for i in range(40):
        (source / f"part{i % 4}" / f"track-{i}.txt").parent.mkdir(parents=True, exist_ok=True)
        (source / f"part{i % 4}" / f"track-{i}.txt").write_text(f"bar {i}\n" * (i + 1))
    (source / "sample.wav").write_bytes(os.urandom(300_000))
    code, err = finish(run_client("push", str(source), a.url + repo_path, "-m", "first", token=token))
    assert code == 0, err
    cloned = tmp_path / "clone-b"
    code, err = finish(run_client("clone", b.url + repo_path, str(cloned)))
    assert code == 0, err
    assert tree_of(cloned) == tree_of(source)

    # An upload slot handed out by A is honoured by B's push call (slots live in the database).
    history = History()
    side = history.commit({"side.txt": b"uploaded via A, pushed via B"}, branch="side")
    data = build_pack(history.commits, history.snapshots, history.blobs)
    key = "sha256:" + hashlib.sha256(data).hexdigest()
    slot = msgpack.unpackb(
        call(f"{a.url}{repo_path}/mpack/upload", token, {"mpack_key": key, "size": len(data)}).content
    )
    assert requests.put(slot["upload_url"], data=data, timeout=30).status_code == 200
    pushed = call(
        f"{b.url}{repo_path}/mpack/push", token,
        {"mpack_key": key, "branch": "side", "head_commit_id": side["commit_id"], "force": False,
         "commits_count": 1, "blobs_count": 1},
    )  # fmt: skip
    assert pushed.status_code == 200, pushed.text
    assert heads(a, repo_path)["side"] == side["commit_id"]

    # A download URL handed out by A works for a client that talks to B (presigned by the shared bucket).
    fetched = msgpack.unpackb(
        call(f"{a.url}{repo_path}/mpack/fetch", token, {"want": [side["commit_id"]], "have": []}).content
    )
    download = requests.get(fetched["mpack_url"], timeout=30)
    assert download.status_code == 200
    assert "sha256:" + hashlib.sha256(download.content).hexdigest() == fetched["mpack_id"]

    # Race: two clients at the same head push different changes, one through A, one through B.
    for round_ in range(ROUNDS):
        one, two = tmp_path / f"one-{round_}", tmp_path / f"two-{round_}"
        clones = [run_client("clone", a.url + repo_path, str(one)), run_client("clone", b.url + repo_path, str(two))]
        assert all(finish(p)[0] == 0 for p in clones)
        start = state_head(one)
        assert state_head(two) == start
        (one / "part0" / "track-0.txt").write_text(f"changed by one in round {round_}\n")
        (two / "part1" / "track-1.txt").write_text(f"changed by two in round {round_}\n")
        racers = [
            run_client("push", str(one), a.url + repo_path, "-m", f"one {round_}", token=token),
            run_client("push", str(two), b.url + repo_path, "-m", f"two {round_}", token=token),
        ]
        outcomes = [finish(p) for p in racers]
        codes = sorted(code for code, _ in outcomes)
        assert codes == [EXIT_OK, EXIT_CONFLICT], outcomes
        winner = (one, two)[[code for code, _ in outcomes].index(EXIT_OK)]
        loser_err = next(err for code, err in outcomes if code == EXIT_CONFLICT)
        assert "force" in loser_err
        assert state_head(winner) != start
        for server in (a, b):
            assert heads(server, repo_path)["main"] == state_head(winner), "no lost update, same answer everywhere"

    # The metrics of each server add up its two workers; together they saw every push.
    totals = {"ok": 0.0, "non_fast_forward": 0.0}
    for server in (a, b):
        samples = scrape(server)
        for outcome in totals:
            totals[outcome] += samples.get(
                ("musehub_pushes_total", frozenset({"protocol": "mpack", "outcome": outcome}.items())), 0.0
            )
    assert totals == {"ok": 2 + ROUNDS, "non_fast_forward": ROUNDS}

    # Production logs: one JSON object per line, and never the token. Nothing landed on a server's own disk.
    for server in (a, b):
        data_dir = server.log.parent / "data"
        assert not data_dir.exists() or not any(data_dir.iterdir()), f"{name_of(server)} kept local state"
        output = server.output()
        assert token not in output and token[3:] not in output
        records = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert any(r.get("event") == "push" for r in records)
        assert any(r.get("event") == "request" and r.get("route") == "mpack-push" for r in records)
