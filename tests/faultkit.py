"""A TCP proxy in front of the test S3 endpoint that fails on demand: storage faults without mocks.

:class:`FaultProxy` listens on ``127.0.0.1:<free port>`` and forwards every
connection to the real upstream (moto's server). Its behaviour can be switched
at any time, between two storage requests:

- :meth:`~FaultProxy.pass_through` forwards everything (the default);
- :meth:`~FaultProxy.stop` refuses new connections (nothing listens: connect
  fails with ECONNREFUSED) and drops the open ones, as a stopped MinIO;
- :meth:`~FaultProxy.hang` accepts and reads each request, and never answers;
- :meth:`~FaultProxy.cut_after` forwards each response but closes the
  connection after *n* bytes of it (the client sees an IncompleteRead mid-body);
- :meth:`~FaultProxy.throttle` forwards responses at most *n* bytes a second;
- :meth:`~FaultProxy.answer_error` answers matching requests itself with an
  S3 XML error (``503 SlowDown`` by default), forwarding the others.

The proxy asks both sides for ``Connection: close``, so each connection
carries exactly one request: :attr:`~FaultProxy.connections` counts attempts
and :attr:`~FaultProxy.requests` lists each ``(method, path)`` seen.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from botocore.config import Config

from tests.conftest import s3_storages

_CHUNK = 64 * 1024
_HEAD_LIMIT = 64 * 1024
_IO_TIMEOUT = 30.0  # a safety net only: tests switch modes long before this


@dataclass(frozen=True)
class _Fault:
    """What the proxy does to the connections it accepts from now on."""

    kind: str = "pass"  # pass, hang, cut, throttle, error
    cut_after: int | None = None
    rate: int | None = None
    status: int = 503
    code: str = "SlowDown"
    message: str = "Please reduce your request rate."
    methods: frozenset[str] | None = None  # None: every method

    def applies_to(self, method: str) -> bool:
        return self.methods is None or method in self.methods


def s3_error(status: int, code: str, message: str, *, with_body: bool = True) -> bytes:
    """Return a whole HTTP response carrying an S3 XML error, as S3 or MinIO would send it."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>faultkit</RequestId></Error>"
    ).encode()
    reason = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    return head + body if with_body else head


def _with_close(head: bytes) -> bytes:
    """Return an HTTP head with its Connection header replaced by ``Connection: close``."""
    lines = head[:-4].split(b"\r\n")
    kept = [lines[0]] + [
        line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


def _headers(head: bytes) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in head[:-4].split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        found[name.strip().lower()] = value.strip()
    return found


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """Read one HTTP head from *sock*; return (head, bytes after it), or None when the peer closes first."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(_CHUNK)
        if not data or len(buffer) > _HEAD_LIMIT:
            return None
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    return buffer[:end], buffer[end:]


class FaultProxy:
    """A threaded TCP proxy to *upstream* (``http://host:port``) whose faults switch at runtime."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._fault = _Fault()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self.port = 0
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- switching faults ---------------------------------------------------------
    def pass_through(self) -> None:
        """Forward everything again (and listen again after :meth:`stop`)."""
        self._set(_Fault())

    def stop(self) -> None:
        """Refuse new connections (nothing listens) and drop the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # stop listening now, not when the accept thread lets go
            except OSError:
                pass
            listener.close()
        self._drop_all()

    def hang(self) -> None:
        """Accept each connection and read its request, then never answer."""
        self._set(_Fault("hang"))

    def cut_after(self, n_bytes: int, *, methods: Iterable[str] | None = None) -> None:
        """Forward responses (to *methods*, default all) but close each connection after *n_bytes* of it."""
        self._set(_Fault("cut", cut_after=n_bytes, methods=frozenset(methods) if methods else None))

    def throttle(self, bytes_per_second: int) -> None:
        """Forward responses at most *bytes_per_second* (slow storage that still makes progress)."""
        self._set(_Fault("throttle", rate=bytes_per_second))

    def answer_error(
        self,
        status: int = 503,
        code: str = "SlowDown",
        message: str = "Please reduce your request rate.",
        *,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Answer requests (with *methods*, default all) with an S3 XML error; forward the others."""
        self._set(_Fault("error", status=status, code=code, message=message, methods=frozenset(methods or ()) or None))

    def reset_counts(self) -> None:
        with self._lock:
            self.connections = 0
            self.requests = []

    def methods_seen(self) -> list[str]:
        with self._lock:
            return [method for method, _ in self.requests]

    def close(self) -> None:
        """Stop for good: no listener, no connection, no thread left waiting."""
        self._closed = True
        self.stop()

    def _set(self, fault: _Fault) -> None:
        with self._lock:
            self._fault = fault
            listening = self._listener is not None
        if not listening and not self._closed:
            self._listen()

    # --- plumbing -----------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))  # the same port again after stop()
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name=f"faultkit-{self.port}", daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            with self._lock:
                self.connections += 1
                self._sockets.add(client)
                fault = self._fault
            threading.Thread(target=self._serve, args=(client, fault), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, *socks: socket.socket | None) -> None:
        for sock in socks:
            if sock is None:
                continue
            with self._lock:
                self._sockets.discard(sock)
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it, and sends FIN now
            except OSError:
                pass
            sock.close()

    def _drop_all(self) -> None:
        with self._lock:
            socks, self._sockets = list(self._sockets), set()
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _serve(self, client: socket.socket, fault: _Fault) -> None:
        upstream = None
        try:
            client.settimeout(_IO_TIMEOUT)
            first = _read_head(client)
            if first is None:
                return
            head, rest = first
            method, target = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2]
            with self._lock:
                self.requests.append((method, target))
            if fault.kind == "hang":
                self._hang(client)
                return
            if fault.kind == "error" and fault.applies_to(method):
                self._drain(client, head, rest)
                client.sendall(s3_error(fault.status, fault.code, fault.message, with_body=method != "HEAD"))
                return
            upstream = socket.create_connection(self._upstream, timeout=_IO_TIMEOUT)
            self._track(upstream)
            upstream.sendall(_with_close(head) + rest)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            self._respond(upstream, client, fault if fault.applies_to(method) else _Fault())
        except OSError:
            pass  # a side went away (or stop() dropped it): nothing more to forward
        finally:
            self._forget(client, upstream)

    def _hang(self, client: socket.socket) -> None:
        """Say nothing until the client gives up (or the proxy drops the connection)."""
        while client.recv(_CHUNK):
            pass

    def _drain(self, client: socket.socket, head: bytes, rest: bytes) -> None:
        """Read the request body the client will send before it reads an answer (none with Expect: 100-continue)."""
        headers = _headers(head)
        if headers.get("expect", "").lower() == "100-continue":
            return
        if "content-length" in headers:
            remaining = int(headers["content-length"]) - len(rest)
            while remaining > 0:
                data = client.recv(min(remaining, _CHUNK))
                if not data:
                    return
                remaining -= len(data)
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            tail = rest
            client.settimeout(1.0)
            try:  # up to the last chunk ("0", trailers, blank line), or until the client pauses
                while not (tail.endswith(b"\r\n\r\n") and b"\r\n0\r\n" in b"\r\n" + tail):
                    data = client.recv(_CHUNK)
                    if not data:
                        return
                    tail = (tail + data)[-256:]
            except TimeoutError:
                pass
            client.settimeout(_IO_TIMEOUT)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        """Copy the request (its body) from the client to upstream until either side closes."""
        try:
            while data := source.recv(_CHUNK):
                target.sendall(data)
        except OSError:
            pass

    def _respond(self, upstream: socket.socket, client: socket.socket, fault: _Fault) -> None:
        """Copy the response to the client, marking it ``Connection: close``, then cut or slow it if asked."""
        sent = 0
        pending = b""
        in_head = True
        while data := upstream.recv(_CHUNK):
            if in_head:
                pending += data
                out = b""
                while in_head and b"\r\n\r\n" in pending:
                    end = pending.index(b"\r\n\r\n") + 4
                    head, pending = pending[:end], pending[end:]
                    if head[9:10] == b"1":  # 100 Continue: pass it on, the real answer follows
                        out += head
                    else:
                        out += _with_close(head)
                        in_head = False
                data = out + (b"" if in_head else pending)
                if not in_head:
                    pending = b""
            if fault.kind == "cut" and fault.cut_after is not None:
                data = data[: max(fault.cut_after - sent, 0)]
            self._send(client, data, fault)
            sent += len(data)
            if fault.kind == "cut" and fault.cut_after is not None and sent >= fault.cut_after:
                return  # the caller closes both sides mid-response

    @staticmethod
    def _send(client: socket.socket, data: bytes, fault: _Fault) -> None:
        if fault.kind != "throttle" or not fault.rate:
            client.sendall(data)
            return
        step = max(fault.rate // 20, 1)
        for start in range(0, len(data), step):
            client.sendall(data[start : start + step])
            time.sleep(step / fault.rate)


def client_config(*, connect_timeout: int = 2, read_timeout: int = 5, attempts: int = 2) -> Config:
    """Return the botocore config the hub's settings build (musehub/settings.py), with short test timeouts."""
    return Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )


def proxied_s3_storages(proxy: FaultProxy, prefix: str, **config) -> dict:
    """Return the ``mpacks`` storage settings of the test bucket, reached through *proxy*."""
    storages = s3_storages(proxy.url, prefix)
    storages["OPTIONS"]["client_config"] = client_config(**config)
    return storages
