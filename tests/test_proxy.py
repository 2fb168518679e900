"""The production path: deploy/nginx.conf in front of gunicorn, so slow clients never hold a hub thread.

gunicorn has no timeout for reading a request: a thread that starts reading one
from a client sending a header line every few seconds waits as long as the
client takes (slowloris). The shipped proxy reads each request whole before the
hub sees it. The file is parsed and its directives checked; where Debian's nginx
is at hand (``make nginx``) it runs the shipped file, only its addresses
changed, in front of a real gunicorn with ``deploy/gunicorn.conf.py``, and
slow clients that stop gunicorn alone leave the proxied hub answering.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings

from tests.conftest import _free_port
from tests.deploykit import PRODUCTION_ENV, REPO, Server, hub_environment, serving
from tests.test_deploy import gunicorn_config

NGINX_CONF = REPO / "deploy" / "nginx.conf"


# --- the shipped file, parsed ----------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.name == name]

    def one(self, name: str) -> list[str]:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} {' '.join(self.args)}: {len(found)} {name} directives"
        return found[0].args

    def walk(self):
        for directive in self.block:
            yield directive
            yield from directive.walk()


def parse_nginx(text: str) -> Directive:
    """Return nginx configuration *text* as a tree of directives (comments dropped, quotes resolved)."""
    tokens = re.findall(r"""#[^\n]*|'(?:\\.|[^'\\])*'|"(?:\\.|[^"\\])*"|[{};]|[^\s{};'"#]+""", text)
    root = Directive("", [])
    stack, words = [root], []
    for token in tokens:
        if token.startswith("#"):
            continue
        if token in (";", "{"):
            directive = Directive(words[0], words[1:])
            stack[-1].block.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        else:
            words.append(re.sub(r"\\(.)", r"\1", token[1:-1]) if token[0] in "'\"" else token)
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[unit]


def size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", value.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def shipped() -> Directive:
    return parse_nginx(NGINX_CONF.read_text())


def hub_server(conf: Directive) -> Directive:
    """Return the server block that proxies to the hub's upstream."""
    servers = [s for s in conf.all("server") if any(d.args == ["http://musehub"] for d in s.walk())]
    assert len(servers) == 1
    return servers[0]


def test_the_parser_reads_blocks_quotes_and_comments():
    conf = parse_nginx("a 1; # x { ;\nb { c 'd e' \"f;g\"; h { i; } }\n")
    assert conf.one("a") == ["1"]
    assert conf.all("b")[0].one("c") == ["d e", "f;g"]
    assert [d.name for d in conf.walk()] == ["a", "b", "c", "h", "i"]


def test_the_hub_server_reads_whole_requests_with_timeouts_for_slow_clients():
    hub = hub_server(shipped())
    assert seconds(hub.one("client_header_timeout")[0]) <= 15, "a header line every few seconds must be cut"
    assert seconds(hub.one("client_body_timeout")[0]) <= 60
    assert seconds(hub.one("send_timeout")[0]) <= 60
    assert seconds(hub.one("keepalive_timeout")[0]) <= 75
    assert hub.one("proxy_request_buffering") == ["on"], "bodies are read whole before the hub sees them"
    assert hub.one("proxy_buffering") == ["on"]
    for directive in hub.walk():  # no location turns buffering off again
        if directive.name in ("proxy_request_buffering", "proxy_buffering"):
            assert directive.args == ["on"], directive
    assert hub.one("reset_timedout_connection") == ["on"]


def test_the_proxy_accepts_what_the_hub_accepts_and_says_so():
    hub = hub_server(shipped())
    limit = size(hub.one("client_max_body_size")[0])
    assert limit >= django_settings.MUSEHUB_MAX_PUSH_REQUEST_BYTES, "an MWP push the hub accepts"
    assert limit >= django_settings.MUSEHUB_MAX_PACK_BYTES, "an mpack upload to the hub's signed URL"
    too_large = next(d for d in hub.all("location") if d.args == ["@too_large"]).one("return")
    assert f"({limit // 1024**3} GiB)" in too_large[1], "the 413 names the proxy's own limit"


def test_the_proxy_never_serves_metrics():
    locations = {tuple(d.args): d for d in hub_server(shipped()).all("location")}
    assert locations[("=", "/metrics")].one("return")[0] == "404"


def test_gunicorn_outlasts_the_proxys_idle_upstream_connections(monkeypatch, tmp_path):
    upstream = next(d for d in shipped().all("upstream") if d.args == ["musehub"])
    conf = gunicorn_config(monkeypatch, tmp_path)
    assert conf["keepalive"] > seconds(upstream.one("keepalive_timeout")[0]), (
        "nginx must drop an idle connection before gunicorn does (else a POST on a closing one is a 502)"
    )
    assert int(upstream.one("keepalive")[0]) > 0, "idle connections to the hub are kept (and so must be timed)"
    reads = [seconds(d.args[0]) for d in hub_server(shipped()).walk() if d.name == "proxy_read_timeout"]
    assert reads and min(reads) >= conf["timeout"], "a push may take as long as gunicorn lets a worker be silent"
    assert conf["graceful_timeout"] <= conf["timeout"]


def test_compose_waits_for_gunicorns_graceful_stop(monkeypatch, tmp_path):
    import yaml

    hub = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())["services"]["hub"]
    assert seconds(hub["stop_grace_period"]) > gunicorn_config(monkeypatch, tmp_path)["graceful_timeout"]
    assert "ports" not in hub, "the app servers are reached through the proxy only"


# --- the shipped file, run ---------------------------------------------------------------------------


def nginx_binary() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", str(REPO / "build/nginx/usr/sbin/nginx")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


NGINX = nginx_binary()
needs_nginx = pytest.mark.skipif(
    NGINX is None, reason="needs Debian's nginx: run `make nginx` (or apt-get install nginx)"
)


def local_config(tmp_path: Path, hub_port: int, proxy_port: int) -> Path:
    """Write the shipped file with local addresses, inside a main configuration of its own; return that."""
    text = NGINX_CONF.read_text()
    for old, new in (
        ("server hub:8000;", f"server 127.0.0.1:{hub_port};"),
        ("listen 80;", f"listen 127.0.0.1:{proxy_port};"),
        ("listen 9000;", f"listen 127.0.0.1:{_free_port()};"),
        ("proxy_pass http://minio:9000;", f"proxy_pass http://127.0.0.1:{_free_port()};"),
    ):
        assert text.count(old) == 1, f"deploy/nginx.conf no longer says {old!r}"
        text = text.replace(old, new)
    (tmp_path / "musehub.conf").write_text(text)
    temp_paths = ""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / name).mkdir()
        temp_paths += f"  {name}_temp_path {tmp_path / name};\n"
    main = tmp_path / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers must reach the private temporary directories
        + f"daemon off;\nworker_processes 1;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log warn;\n"
        + "events { worker_connections 256; }\n"
        + f"http {{\n  access_log off;\n{temp_paths}  include {tmp_path}/musehub.conf;\n}}\n"
    )
    return main


@needs_nginx
def test_nginx_accepts_the_shipped_file(tmp_path):
    import subprocess

    main = local_config(tmp_path, _free_port(), _free_port())
    result = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(main)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


# A sign-in form post with a CSRF cookie: Django's CSRF check reads the body before any view runs.
SLOW_BODY = (
    b"POST /accounts/login HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken=" + b"c" * 32 + b"\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nusername=alice"
)


class SlowClient:
    """A client that sends a request's start, then one more header line (or body byte) per :meth:`trickle`."""

    def __init__(self, port: int, *, body: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.body = body
        self.closed_at: float | None = None
        self.sock.sendall(SLOW_BODY if body else b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    def trickle(self) -> bool:
        """Send a little more; return False (and note when) once the server has closed the connection."""
        if self.closed_at is not None:
            return False
        try:
            self.sock.setblocking(False)
            try:
                if self.sock.recv(4096) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                pass  # nothing to read: still open
            finally:
                self.sock.setblocking(True)
            self.sock.sendall(b"x" if self.body else b"X-Slow: 1\r\n")
            return True
        except OSError:
            self.closed_at = time.monotonic()
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def gunicorn(tmp_path):
    """One production app server with 1 worker of 2 threads, as deploy/gunicorn.conf.py starts it."""
    port = _free_port()
    (tmp_path / "static").mkdir()
    env = hub_environment(
        tmp_path, **{**PRODUCTION_ENV, "MUSEHUB_ALLOWED_HOSTS": "127.0.0.1,localhost"},
        MUSEHUB_STATIC_ROOT=str(tmp_path / "static"), MUSEHUB_BIND=f"127.0.0.1:{port}", MUSEHUB_WORKERS="1",
        MUSEHUB_THREADS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    with serving(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "musehub.wsgi"],
        f"http://127.0.0.1:{port}", env, tmp_path / "gunicorn.log",
    ) as server:  # fmt: skip
        yield server


@pytest.fixture
def proxy(gunicorn, tmp_path):
    """The shipped nginx.conf in front of *gunicorn*."""
    port = _free_port()
    nginx_dir = tmp_path / "nginx"
    nginx_dir.mkdir()
    main = local_config(nginx_dir, int(gunicorn.url.rsplit(":", 1)[1]), port)
    with serving(
        [NGINX, "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"), "-c", str(main)],
        f"http://127.0.0.1:{port}", os.environ.copy(), nginx_dir / "nginx.out",
    ) as server:  # fmt: skip
        yield server


def health_within(url: str, seconds_: float) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=seconds_).status_code == 200
    except requests.RequestException:
        return False


def trickle_all(clients: list[SlowClient], stop: threading.Event) -> None:
    while not stop.wait(1.0):
        for client in clients:
            client.trickle()


def answers_during(port: int, url: str, *, body: bool, clients: int = 3) -> bool:
    """Return whether *url*/health answers within 2 s while *clients* slow clients trickle to *port*."""
    slow = [SlowClient(port, body=body) for _ in range(clients)]
    stop = threading.Event()
    feeder = threading.Thread(target=trickle_all, args=(slow, stop), daemon=True)
    feeder.start()
    try:
        time.sleep(1)
        return health_within(url, 2)
    finally:
        stop.set()
        feeder.join()
        for client in slow:
            client.close()


@needs_nginx
def test_slow_clients_stop_a_bare_gunicorn_but_not_the_proxied_hub(gunicorn: Server, proxy: Server):
    header_timeout = seconds(hub_server(shipped()).one("client_header_timeout")[0])
    assert health_within(gunicorn.url, 5) and health_within(proxy.url, 5)

    # Without the proxy, three slow clients hold both threads of the only worker and /health waits behind them,
    # whether they send a header line or a body byte every second (else this test would prove nothing).
    port = int(gunicorn.url.rsplit(":", 1)[1])
    for body in (False, True):
        assert not answers_during(port, gunicorn.url, body=body), f"slow {'bodies' if body else 'headers'}"
        assert health_within(gunicorn.url, 10), "gunicorn recovers once they leave"

    # Through the proxy: twice as many slow clients (headers and bodies), and the hub keeps answering at once:
    # nginx reads each header and body whole before the hub sees the request.
    started = time.monotonic()
    slow = [SlowClient(int(proxy.url.rsplit(":", 1)[1]), body=k % 2 == 1) for k in range(6)]
    stop = threading.Event()
    feeder = threading.Thread(target=trickle_all, args=(slow, stop), daemon=True)
    feeder.start()
    try:
        for _ in range(4):
            time.sleep(0.5)
            assert health_within(proxy.url, 2), "the proxied hub answers while slow clients trickle"
        # nginx cuts the slow headers at client_header_timeout (the slow bodies only stall after 60 s).
        deadline = started + header_timeout + 5
        while time.monotonic() < deadline and any(c.closed_at is None for c in slow if not c.body):
            time.sleep(0.5)
    finally:
        stop.set()
        feeder.join()
        for client in slow:
            client.close()
    cut = [c.closed_at - started for c in slow if not c.body]
    assert all(c is not None for c in cut), "nginx closes a header that never ends"
    assert max(cut) <= header_timeout + 3, cut
    assert "Worker timeout" not in gunicorn.output()


@needs_nginx
def test_metrics_are_for_direct_scrapes_not_through_the_proxy(gunicorn: Server, proxy: Server):
    assert requests.get(f"{gunicorn.url}/metrics", timeout=10).status_code == 200, "loopback, directly: allowed"
    refused = requests.get(f"{proxy.url}/metrics", timeout=10)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    # Even where the proxy passed it on, the hub sees X-Forwarded-For and does not let loopback in by address.
    forwarded = requests.get(f"{gunicorn.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert forwarded.status_code == 404
