"""Start and stop the hub stack on 127.0.0.1: PostgreSQL database, moto S3 server, gunicorn.

- PostgreSQL: the cluster on 127.0.0.1:5432 (user postgres, trust auth). A
  template database is migrated once (with the bench user and token in it);
  every run gets a fresh ``musehub_bench`` copied from it, dropped at the end.
- S3: ``python -m moto.server`` in a subprocess on a free port; every run resets
  it (``/moto-api/reset``) and creates an empty bucket.
- gunicorn: ``gunicorn musehub.wsgi`` (2 workers x 4 threads, timeout 600) with
  ``MUSEHUB_BENCH_STATS`` pointing at a JSON-lines file that
  :mod:`bench.server_stats` fills, one line per request.
- embedded (``--embedded``): no PostgreSQL and no moto; the hub runs on
  ``make run``'s defaults, SQLite and filesystem storage under
  ``MUSEHUB_DATA_DIR``, copied from a migrated template folder for every run.

Every process is started here and stopped here (by its own pid), bounded waits.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_USER = "bench"
S3_KEYS = ("bench", "bench-secret")
S3_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        time.sleep(interval)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s" + (f" ({last})" if last else ""))


def stop_process(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM the process group *proc* leads, then SIGKILL after *timeout*."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def pg_connect(dbname: str = "postgres"):
    import psycopg

    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return psycopg.connect(f"{base}/{dbname}", autocommit=True)


def pg_version() -> str:
    with pg_connect() as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def db_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


class MotoServer:
    """moto's S3 server in a subprocess on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        log.close()
        wait_until(lambda: requests.get(f"{self.url}/moto-api/", timeout=2).status_code < 500, 30, "moto server")

    def reset(self, bucket: str) -> None:
        """Drop everything moto holds (frees its memory) and create an empty *bucket*."""
        import boto3

        requests.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()
        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEYS[0],
            aws_secret_access_key=S3_KEYS[1],
        ).create_bucket(Bucket=bucket)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


RELATION_SIZES_SQL = """
SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid), pg_indexes_size(c.oid),
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname LIKE 'musehub\\_%'
ORDER BY 2 DESC, 1
"""

# Run by ``manage.py shell -c`` against the bench database: time rebuilding one manifest (W5).
REBUILD_CODE = """
import json, statistics, time
from django.db import connection
from musehub_core.ids import compute_snapshot_id
from repos.manifests import load_manifest
from repos.models import Snapshot
sid = "%(sid)s"
connection.ensure_connection()
times = []
for _ in range(%(repeat)d):
    started = time.perf_counter()
    manifest = load_manifest(sid)
    times.append((time.perf_counter() - started) * 1000)
assert compute_snapshot_id(manifest) == sid, "the rebuilt manifest does not hash to its id"
row = Snapshot.objects.filter(snapshot_id=sid).values_list("depth", flat=True).first()
print(json.dumps({
    "first_ms": times[0], "median_ms": statistics.median(times[1:] or times), "entries": len(manifest),
    "depth": row, "checkpoints": Snapshot.objects.filter(base_id__isnull=True).count(),
    "deltas": Snapshot.objects.filter(base_id__isnull=False).count(),
}))
"""


@dataclass(frozen=True)
class RelationSize:
    """One table of the hub's database: rows and bytes (total = heap + indexes + TOAST + free-space maps)."""

    name: str
    rows: int
    total: int
    heap: int
    indexes: int
    toast: int


@dataclass
class Hub:
    """The whole stack; :meth:`start_run` gives a fresh database, bucket and gunicorn."""

    workdir: Path
    embedded: bool = False  # SQLite and filesystem storage (make run's default) instead of PostgreSQL and moto
    workers: int = 2
    threads: int = 4
    db_name: str = "musehub_bench"
    bucket: str = "musehub-bench"
    token: str = ""
    port: int = 0
    moto: MotoServer | None = None
    gunicorn: subprocess.Popen | None = None
    stats_path: Path = field(default_factory=Path)
    secret_key: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(40))

    @property
    def template_db(self) -> str:
        return f"{self.db_name}_template"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def data_dir(self, db: str | None = None) -> Path:
        """MUSEHUB_DATA_DIR; embedded, it holds the SQLite database and the stored packs (one per database name)."""
        return self.workdir / ("data" if (db or self.db_name) == self.db_name else f"data-{db}")

    def env(self, db: str | None = None) -> dict[str, str]:
        """The environment of every hub process (gunicorn and manage.py)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSEHUB_", "DATABASE_URL", "DJANGO_", "AWS_"))}
        if not self.embedded:
            assert self.moto is not None
            env.update(
                {
                    "DATABASE_URL": db_url(db or self.db_name),
                    "MUSEHUB_S3_BUCKET": self.bucket,
                    "MUSEHUB_S3_ENDPOINT_URL": self.moto.url,
                    "MUSEHUB_S3_ACCESS_KEY": S3_KEYS[0],
                    "MUSEHUB_S3_SECRET_KEY": S3_KEYS[1],
                    "MUSEHUB_S3_REGION": S3_REGION,
                }
            )
        env.update(
            {
                "MUSEHUB_DATA_DIR": str(self.data_dir(db) if self.embedded else self.workdir / "data"),
                "DJANGO_SECRET_KEY": self.secret_key,
                "MUSEHUB_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "MUSEHUB_LOG_LEVEL": "WARNING",
                "MUSEHUB_BENCH_STATS": str(self.stats_path),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def manage(self, *args: str, db: str | None = None, timeout: float = 1800) -> str:
        """Run ``manage.py *args`` against the bench stack; return stdout (raise with its output on failure)."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env(db),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> None:
        """Start moto and build the migrated template database holding the bench user and token."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.stats_path = self.workdir / "server-stats.jsonl"
        if self.embedded:
            self.data_dir(self.template_db).mkdir()
            self.manage("migrate", "--noinput", db=self.template_db)
            self.token = self.manage(
                "musehub_token", "create", BENCH_USER, "--create-user", "--name", "bench", db=self.template_db
            ).strip()
            return
        self.moto = MotoServer(self.workdir / "moto.log")
        self.moto.start()
        self._drop(self.db_name)
        self._drop(self.template_db)
        with pg_connect() as conn:
            conn.execute(f'CREATE DATABASE "{self.template_db}"')
        self.manage("migrate", "--noinput", db=self.template_db)
        self.token = self.manage(
            "musehub_token", "create", BENCH_USER, "--create-user", "--name", "bench", db=self.template_db
        ).strip()

    def start_run(self) -> None:
        """Fresh database (from the template), empty bucket, new gunicorn."""
        self.stop_run()
        if self.embedded:
            shutil.rmtree(self.data_dir(), ignore_errors=True)
            shutil.copytree(self.data_dir(self.template_db), self.data_dir())
        else:
            assert self.moto is not None
            self._drop(self.db_name)
            with pg_connect() as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}" TEMPLATE "{self.template_db}"')
            self.moto.reset(self.bucket)
        self.stats_path.write_bytes(b"")
        self.port = free_port()
        log = open(self.workdir / "gunicorn.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.gunicorn = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "musehub.wsgi",
                "-b", f"127.0.0.1:{self.port}",
                "--workers", str(self.workers),
                "--threads", str(self.threads),
                "--timeout", "600",
                "--graceful-timeout", "10",
            ],
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

        def up() -> bool:
            if self.gunicorn is not None and self.gunicorn.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.workdir / 'gunicorn.log'}")
            return requests.get(f"{self.url}/{BENCH_USER}/none/refs", timeout=5).status_code == 404

        wait_until(up, 60, "gunicorn")
        # Warm every worker's imports and DB connection so the first measured request is not a cold start.
        for _ in range(self.workers * 4):
            requests.get(f"{self.url}/{BENCH_USER}/none/refs", timeout=5)

    def stop_run(self) -> None:
        stop_process(self.gunicorn)
        self.gunicorn = None

    # --- what the hub stores (W5) ----------------------------------------------
    def relation_sizes(self) -> list[RelationSize]:
        """Return the size of every ``musehub_*`` table of the run's database (largest first)."""
        with pg_connect(self.db_name) as conn:
            rows = conn.execute(RELATION_SIZES_SQL).fetchall()
            sizes = []
            for name, total, heap, indexes, toast in rows:
                count = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                sizes.append(RelationSize(name, count, total, heap, indexes, toast))
        return sizes

    def bucket_usage(self) -> dict[str, tuple[int, int]]:
        """Return {first key segment (``mpacks``, ``incoming``, ...): (objects, bytes)} of the bucket."""
        import boto3

        assert self.moto is not None
        s3 = boto3.client(
            "s3",
            endpoint_url=self.moto.url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEYS[0],
            aws_secret_access_key=S3_KEYS[1],
        )
        usage: dict[str, tuple[int, int]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                prefix = item["Key"].split("/", 1)[0]
                count, size = usage.get(prefix, (0, 0))
                usage[prefix] = (count + 1, size + item["Size"])
        return usage

    def time_manifest_rebuild(self, snapshot_id: str, repeat: int = 21) -> dict[str, float]:
        """Time ``repos.manifests.load_manifest(snapshot_id)`` in a Django process on the run's database.

        Returns the first call's and the median of the others' milliseconds, the
        manifest's entries, the snapshot's stored depth (deltas above its
        checkpoint) and how many stored snapshots are checkpoints / deltas.
        """
        answer = self.manage("shell", "-c", REBUILD_CODE % {"sid": snapshot_id, "repeat": repeat})
        line = next(line for line in reversed(answer.splitlines()) if line.startswith("{"))
        return json.loads(line)

    def close(self) -> None:
        self.stop_run()
        if self.moto is not None:
            self.moto.stop()
        if self.embedded:
            return
        with contextlib.suppress(Exception):
            self._drop(self.db_name)
            self._drop(self.template_db)

    def _drop(self, name: str) -> None:
        with pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> Hub:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatsLog:
    """Reads the JSON lines bench.server_stats writes: one per request, in the order they finished."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def between(self, start: int, end: int) -> list[dict]:
        if end <= start:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(end - start)
        return [json.loads(line) for line in data.splitlines() if line.strip()]
