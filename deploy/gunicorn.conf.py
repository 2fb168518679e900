"""gunicorn settings of a MuseHub app server: ``gunicorn -c deploy/gunicorn.conf.py musehub.wsgi``.

``make serve`` and the ``hub`` service of ``deploy/compose.yaml`` start it
this way. Everything comes from the environment:

- ``MUSEHUB_BIND`` (else ``HOST``:``PORT``, default ``127.0.0.1:8000``): where to listen;
- ``MUSEHUB_WORKERS`` (default: the CPU count, at least 2) processes of
  ``MUSEHUB_THREADS`` (default 4) threads each (``gthread``: pushes and fetches
  wait on storage and the database, threads keep a worker busy meanwhile).
  Every thread may hold a database connection: servers x workers x threads
  must stay under PostgreSQL's ``max_connections``;
- ``MUSEHUB_TIMEOUT`` (default 600 s): the worker's heartbeat. gthread
  workers answer in their threads while the main loop beats, so a long request
  (a push verifies its whole pack, up to ``MUSEHUB_MAX_PACK_BYTES``, before it
  answers: minutes for the biggest) never trips it; a worker whose main loop
  is stuck that long is killed and replaced. What ends a request that takes
  too long is the proxy's ``proxy_read_timeout``, as long as this (600 s).

Behind a proxy only. gunicorn has no timeout for reading a request: a thread
that starts reading one from a slow client waits for as long as the client
takes, so a few clients sending a header line every few seconds hold every
thread. ``deploy/nginx.conf`` reads each request whole (header and body) before
passing it on; gunicorn then sees only complete requests from the proxy. Its
other timeouts are set for that: ``keepalive`` (75 s) outlasts nginx's idle
upstream connections (``keepalive_timeout 60s`` in the ``upstream`` block), so
nginx never sends a request on a connection gunicorn is closing, and a stopped
server gives running requests ``graceful_timeout`` (60 s) to finish (compose
waits ``stop_grace_period``, 75 s, before it kills the container).

Request bodies are not limited here: the hub answers 413 beyond its own limits
(``MUSEHUB_MAX_REQUEST_BYTES``, ``MUSEHUB_MAX_PUSH_REQUEST_BYTES``) and the
proxy's ``client_max_body_size`` is set to the largest of them. Request lines
and headers are: signed storage URLs are long, headers are not.

Metrics of several workers: ``PROMETHEUS_MULTIPROC_DIR`` names a directory the
workers write their values to (``/metrics`` adds them up). Unset, a private
temporary directory is used; it is emptied when the server starts.
"""

import glob
import os
import shutil
import tempfile


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


bind = os.environ.get("MUSEHUB_BIND") or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = _int("MUSEHUB_WORKERS", max(2, os.cpu_count() or 1))
threads = _int("MUSEHUB_THREADS", 4)
timeout = _int("MUSEHUB_TIMEOUT", 600)  # the heartbeat, not a request's limit (above)
graceful_timeout = min(timeout, 60)
keepalive = 75  # longer than the proxy's upstream keepalive_timeout (60 s)
# gunicorn's runtime control socket lives in $HOME: off, so several servers can share a host
# (and a read-only home in containers is no problem).
control_socket_disable = True

# The longest request line is a hub-signed storage URL (a few hundred bytes).
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# The hub writes its own request lines (musehub.logs); gunicorn reports only its own events.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("MUSEHUB_LOG_LEVEL", "INFO").lower()
_log_format = os.environ.get("MUSEHUB_LOG_FORMAT") or (
    "json" if os.environ.get("MUSEHUB_ENV") == "production" else "text"
)
# gunicorn's own lines (start, worker exits, timeouts) in the hub's format (musehub.logs).
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"hub": {"()": f"musehub.logs.{'JsonFormatter' if _log_format == 'json' else 'TextFormatter'}"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "hub", "stream": "ext://sys.stderr"}},
    "root": {"level": "WARNING", "handlers": []},  # the hub's loggers bring their own handler
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": loglevel.upper(), "propagate": False},
        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off a possibly slow container disk

_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    # Set before the workers import prometheus_client (they inherit the environment).
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="musehub-metrics-")


def on_starting(server):
    """Empty the metrics directory: values of a previous run must not be added to this one's."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    """Tell prometheus_client a worker is gone (its live gauges stop counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
