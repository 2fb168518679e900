"""Per-request server statistics for the benchmark, switched on only by ``MUSEHUB_BENCH_STATS=<file>``.

``musehub/settings.py`` puts :class:`BenchStatsMiddleware` first in MIDDLEWARE
when that variable is set (and never otherwise). For every request it appends
one JSON line to the file:

``{"pid", "method", "path", "status", "seconds", "db_queries",
"db_statements", "storage_ops": {op: n}, "storage_op_bytes", "s3": {HTTP method: n},
"s3_get_bytes", "rss_start_kb", "peak_rss_kb", "maxrss_kb"}``

- ``storage_ops``: the MPackStore's own reports (``get_backend().add_observer``);
  ``storage_op_bytes`` sums the bytes of its read operations.
- ``s3``: every HTTP request botocore sends to the S3 endpoint (HEADs and
  copies included, which the store does not report), ``s3_get_bytes`` the
  Content-Length of the GET answers: the bytes the hub read from storage.
- ``db_queries``: execute/executemany calls on the default connection
  (``connection.execute_wrapper``); ``db_statements`` counts an executemany
  as its number of parameter rows (the statements PostgreSQL runs).
- ``peak_rss_kb``: the worker's peak resident memory during the request
  (VmHWM, reset through ``/proc/self/clear_refs`` when the request starts and
  no other is in flight); ``rss_start_kb`` its resident memory when the
  request started (memory kept from earlier requests); ``maxrss_kb`` the
  worker's lifetime ru_maxrss.

Requests run on gunicorn threads: events are attributed to the request of the
current thread, or, from helper threads (boto3's transfer pool), to the one
request in flight.
"""

from __future__ import annotations

import json
import os
import re
import resource
import threading
import time

from django.db import connection

READ_OPS = frozenset({"open_mpack", "get_mpack", "get_range", "open_upload", "get", "open_staged"})
_local = threading.local()
_lock = threading.Lock()
_inflight: list[dict] = []
_installed = False


def _record() -> dict | None:
    rec = getattr(_local, "record", None)
    if rec is not None:
        return rec
    with _lock:
        return _inflight[0] if len(_inflight) == 1 else None


def _on_storage_op(event) -> None:
    rec = _record()
    if rec is None:
        return
    ops = rec["storage_ops"]
    ops[event.op] = ops.get(event.op, 0) + 1
    if event.op in READ_OPS:
        rec["storage_op_bytes"] += event.nbytes or 0


def _install() -> None:
    """Register the storage observer and wrap botocore's HTTP send (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    from repos.storage.backend import get_backend

    get_backend().add_observer(_on_storage_op)
    try:
        from botocore.httpsession import URLLib3Session
    except ImportError:  # pragma: no cover - filesystem-only installs
        return
    original = URLLib3Session.send

    def send(self, request):
        response = original(self, request)
        rec = _record()
        if rec is not None:
            method = request.method
            rec["s3"][method] = rec["s3"].get(method, 0) + 1
            if method == "GET":
                rec["s3_get_bytes"] += int(response.headers.get("Content-Length") or 0)
        return response

    URLLib3Session.send = send


def _vm_kb(key: str) -> int:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"{key}:\s+(\d+)", handle.read())
        return int(match.group(1)) if match else 0
    except OSError:
        return 0


def _reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def statements(params, many: bool) -> int:
    """Return how many statements one execute (1) or executemany (one per parameter row) runs."""
    if not many:
        return 1
    try:
        return len(params)
    except TypeError:
        return 1


class BenchStatsMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.path = os.environ["MUSEHUB_BENCH_STATS"]

    def __call__(self, request):
        _install()  # after settings are ready, so get_backend() sees the configured storage
        rec = {
            "storage_ops": {},
            "storage_op_bytes": 0,
            "s3": {},
            "s3_get_bytes": 0,
            "db_queries": 0,
            "db_statements": 0,
        }
        with _lock:
            if not _inflight:
                _reset_hwm()
            _inflight.append(rec)
        rec["rss_start_kb"] = _vm_kb("VmRSS")
        _local.record = rec

        def count(execute, sql, params, many, context):
            rec["db_queries"] += 1
            rec["db_statements"] += statements(params, many)
            return execute(sql, params, many, context)

        started = time.perf_counter()
        status = 500
        try:
            with connection.execute_wrapper(count):
                response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            rec["seconds"] = time.perf_counter() - started
            _local.record = None
            with _lock:
                _inflight.remove(rec)
            rec.update(
                pid=os.getpid(),
                method=request.method,
                path=request.path,
                status=status,
                peak_rss_kb=_vm_kb("VmHWM"),
                maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                finished=time.time(),
            )
            line = json.dumps(rec, separators=(",", ":")) + "\n"
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
