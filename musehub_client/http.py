"""Talking to the hub: :class:`HubClient` (docs/wire.md §3), Bearer auth, error decoding, exit codes, retries.

Every failure becomes a :class:`ClientError` carrying the exit code the command
line ends with (see ``EXIT_*``). API calls carry the Bearer token; transfers to
and from storage URLs never do.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any
from urllib.parse import quote, urljoin, urlsplit

import msgpack
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from musehub_client.feedback import Feedback, PhaseHook, ProgressReport, Silent, no_phases
from musehub_core.ids import is_id
from musehub_core.protocol import (
    INLINE_PACK_MAX_BYTES,
    JSON_TYPE,
    MSGPACK_TYPE,
    NATIVE_PROTOCOL,
    PACK_COUNT_HEADERS,
    PACK_STREAM,
    PACK_TYPE,
    PROTOCOL_HEADER,
    PUSH_INLINE,
)
from musehub_core.protocol import SNAPSHOT_DELTA as SNAPSHOT_DELTA  # re-exported: callers test capabilities by it

# --- exit codes and errors ----------------------------------------------------------

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_SERVER = 6
EXIT_INTERRUPTED = 130

CHUNK = 1024 * 1024
FILTER_BATCH = 2000  # object ids per filter-objects call
MAX_ATTEMPTS = 5  # for 503 + Retry-After
CONNECTION_RETRIES = 2  # a refused or dropped connection, before any answer
MAX_RETRY_WAIT = 30.0
API_TIMEOUT = (15, 300)  # (connect, read) seconds; push verifies the whole pack before answering
TRANSFER_TIMEOUT = (15, 300)


class ClientError(Exception):
    """A failure to report as one line ``error: <message>`` and exit with *exit_code*."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code  # the hub's error code (``repo_not_found``, ...) when the hub answered one


class StreamCut(ClientError):
    """A streamed fetch reply ended before the pack did (the hub or the network failed mid-way): retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_SERVER)


def exit_code_for_status(status: int) -> int:
    """Return the exit code for an HTTP error *status*."""
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 409:
        return EXIT_CONFLICT
    if status >= 500:
        return EXIT_SERVER
    return EXIT_ERROR


def integrity_error(message: str) -> ClientError:
    """Return the error for downloaded data that fails a check (exit 6)."""
    return ClientError(f"integrity check failed: {message}", EXIT_SERVER)


# --- plumbing -----------------------------------------------------------------------


class _BearerAuth(requests.auth.AuthBase):
    """Send ``Authorization: Bearer <token>``, or no Authorization at all when *token* is empty.

    Setting an auth object also stops requests from applying ~/.netrc credentials.
    """

    def __init__(self, token: str | None) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.pop("Authorization", None)
        if self.token:
            request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class _UploadBody:
    """A sized, file-like request body that reports progress as requests streams it."""

    def __init__(self, handle: IO[bytes], size: int, progress: ProgressReport) -> None:
        self._handle = handle
        self._size = size
        self._progress = progress

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n if n and n > 0 else CHUNK)
        self._progress.update(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while data := self.read(CHUNK):
            yield data


def token_help(hub_root: str) -> str:
    """Return how to get and send a token, for the hub at *hub_root* (``http://host:port/``)."""
    return (
        f"set MUSEHUB_TOKEN or pass --token; create a token at {hub_root}accounts/tokens (signed in), "
        "or ask the hub's operator (python manage.py musehub_token create USER)"
    )


def normalize_url(url: str) -> str:
    """Return the repository URL without a trailing slash, or raise ClientError (usage) if it is not one.

    A repository URL names the hub, the owner and the repository: ``http://host:8000/OWNER/REPO``.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"{url!r} is not a repository URL like http://127.0.0.1:8000/OWNER/REPO", EXIT_USAGE)
    if parts.query or parts.fragment:
        raise ClientError(f"{url!r}: a repository URL has no query or fragment", EXIT_USAGE)
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2:
        example = f"{parts.scheme}://{parts.netloc}/{segments[0] if segments else 'OWNER'}/REPO"
        raise ClientError(
            f"{url!r} names no repository: a repository URL ends with the owner and the repository name, "
            f"like {example}",
            EXIT_USAGE,
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def owner_and_name(url: str) -> tuple[str, str]:
    """Return (owner, repository name) of a normalized repository URL (its last two path segments)."""
    segments = urlsplit(url).path.strip("/").split("/")
    return segments[-2], segments[-1]


def _decode_body(response: requests.Response) -> Any:
    """Return a response body decoded as msgpack or JSON (by Content-Type, msgpack first)."""
    kind = response.headers.get("Content-Type", "")
    if "json" in kind:
        return json.loads(response.content)
    return msgpack.unpackb(response.content, raw=False)


def _error_detail(response: requests.Response) -> str:
    """Return the human message of an error response: ``detail`` of a JSON/msgpack body, else its text."""
    body: Any = None
    with contextlib.suppress(Exception):
        body = _decode_body(response)
    if body is None:
        with contextlib.suppress(Exception):
            body = json.loads(response.content)
    if isinstance(body, Mapping):
        detail = body.get("detail") or body.get("message") or body.get("error")
        if detail:
            return str(detail)
    if "html" in response.headers.get("Content-Type", ""):
        return f"HTTP {response.status_code} {response.reason or ''}".strip()
    text = " ".join(response.text.split())[:300] if response.content else ""
    return text or f"HTTP {response.status_code} {response.reason or ''}".strip()


def _error_code(response: requests.Response) -> str | None:
    """Return the ``error`` code of an error answer (``repo_not_found``, ...), None when it has none."""
    body: Any = None
    with contextlib.suppress(Exception):
        body = _decode_body(response)
    code = body.get("error") if isinstance(body, Mapping) else None
    return code if isinstance(code, str) else None


def _network_reason(exc: requests.RequestException) -> str:
    """Return a short, readable reason for a failed request (no urllib3 object reprs, no pool details)."""
    if isinstance(exc, requests.Timeout):
        return "timed out"
    reason: Any = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    # urllib3 prefixes "<connection object at 0x…>: "; keep what a person can read.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return "unknown host name"
    if "remotedisconnected" in lowered or "connection aborted" in lowered or "connection reset" in lowered:
        return "the connection was closed before an answer"
    return text[:200]


def unreachable(where: str, exc: requests.RequestException) -> ClientError:
    """Return the error for a hub that did not answer at all (exit 6): say where, why, and what to check."""
    return ClientError(
        f"the hub is not reachable at {where} ({_network_reason(exc)}): is it running, and is the URL right?",
        EXIT_SERVER,
    )


def _retry_after(value: str) -> float:
    try:
        wait = float(value)
    except ValueError:
        wait = 2.0
    return min(max(wait, 0.5), MAX_RETRY_WAIT)


def capabilities_of(refs: Mapping[str, Any]) -> frozenset[str]:
    """Return the capabilities a ``/refs`` answer lists (none when it has no ``capabilities`` list)."""
    listed = refs.get("capabilities")
    if not isinstance(listed, list):
        return frozenset()
    return frozenset(c for c in listed if isinstance(c, str))


# --- the hub ----------------------------------------------------------------------------


def _retrying_session() -> requests.Session:
    """Return a session that retries a request whose connection failed or was dropped before any answer.

    Every call of the protocol is safe to repeat (upload slots, pushes of one
    key, fetches and PUTs to a content-addressed URL are idempotent), so a
    keep-alive connection the hub or a proxy closed while idle costs a retry,
    not an error. Answers (even 5xx) are not retried here: 503 + Retry-After is.
    """
    session = requests.Session()
    retry = Retry(
        total=CONNECTION_RETRIES,
        connect=CONNECTION_RETRIES,
        read=CONNECTION_RETRIES,
        status=0,
        other=0,
        allowed_methods=None,
        backoff_factor=0.2,
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class HubClient:
    """Speaks the mpack protocol to one repository over one requests.Session.

    Every method raises :class:`ClientError` (with the exit code of the failure)
    instead of returning an error. API calls carry the Bearer token; transfers to
    and from storage URLs never do. Notes (retries) and transfer progress go to
    *out* (default: nowhere).
    """

    def __init__(self, url: str, token: str | None = None, *, out: Feedback | None = None) -> None:
        self.url = normalize_url(url)
        parts = urlsplit(self.url)
        self.hub_root = f"{parts.scheme}://{parts.netloc}/"
        self.owner, self.name = owner_and_name(self.url)
        self.has_token = bool(token)
        self.out: Feedback = out or Silent()
        self.session = _retrying_session()
        self.session.auth = _BearerAuth(token)
        self.session.headers.update({"Accept": MSGPACK_TYPE, PROTOCOL_HEADER: NATIVE_PROTOCOL})
        self.transfer = _retrying_session()
        self.transfer.auth = _BearerAuth(None)
        self.capabilities: frozenset[str] = frozenset()  # what the last ``refs`` answer listed

    def close(self) -> None:
        self.session.close()
        self.transfer.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing

    def _request(self, method: str, suffix: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call ``{repo}/{suffix}``; return the decoded map, retrying 503 + Retry-After a few times."""
        return self._decoded(self._send(method, suffix, body), suffix)

    def _send(
        self, method: str, suffix: str, body: Mapping[str, Any] | None = None, *, stream: bool = False
    ) -> requests.Response:
        """Call ``{repo}/{suffix}``; return the successful response, retrying 503 + Retry-After a few times."""
        url = f"{self.url}/{suffix}"
        data = msgpack.packb(dict(body), use_bin_type=True) if body is not None else None
        headers = {"Content-Type": MSGPACK_TYPE} if data is not None else {}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.session.request(
                    method, url, data=data, headers=headers, timeout=API_TIMEOUT, allow_redirects=False, stream=stream
                )
            except requests.RequestException as exc:
                raise unreachable(self.hub_root.rstrip("/"), exc) from None
            if response.status_code == 503 and attempt < MAX_ATTEMPTS and "Retry-After" in response.headers:
                wait = _retry_after(response.headers["Retry-After"])
                self.out.note(f"{_error_detail(response)} (retrying in {wait:g}s)")
                response.close()
                time.sleep(wait)
                continue
            if not response.ok or response.is_redirect:
                raise self.failure(response, suffix)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _decoded(self, response: requests.Response, suffix: str) -> dict[str, Any]:
        """Return the map a protocol answer carries; a web page or a non-map is a clear ClientError."""
        if "html" in response.headers.get("Content-Type", ""):
            raise self.not_a_repository(suffix)
        try:
            decoded = _decode_body(response)
        except Exception:
            raise self.not_a_repository(suffix) from None
        if not isinstance(decoded, dict):
            raise ClientError(f"the hub's answer to {suffix} is not a map", EXIT_SERVER)
        return decoded

    def not_a_repository(self, suffix: str) -> ClientError:
        """Return the error for an answer that is not the protocol at all (a web page, a proxy's text)."""
        return ClientError(
            f"{self.url} answered {suffix} with something other than the MuseHub protocol (a web page?): "
            f"check that it is a repository URL, {self.hub_root}OWNER/REPO, and that {self.hub_root} is a MuseHub "
            "(names the hub uses for its own pages, such as admin, api and static, own no repositories)",
            EXIT_SERVER,
        )

    def failure(self, response: requests.Response, what: str) -> ClientError:
        """Return the ClientError for an error answer to *what*, saying what to do about it.

        401 says how to send a token; 404 hints at the URL and, without a token,
        that a private repository needs one; a redirect names where it points
        (protocol calls do not follow redirects: a POST would turn into a GET).
        """
        status = response.status_code
        detail = _error_detail(response)
        if response.is_redirect:
            target = urljoin(response.url, response.headers.get("Location", ""))
            return ClientError(
                f"{self.url} answered {what} with a redirect to {target}: use the repository's URL itself",
                EXIT_NOT_FOUND,
            )
        if status == 401:
            if not self.has_token:
                return ClientError(f"{detail.rstrip('.')}. This needs a token: {token_help(self.hub_root)}", EXIT_AUTH)
            return ClientError(
                f"the hub refused the token ({detail.rstrip('.')}): it may be mistyped, revoked or expired; "
                f"{token_help(self.hub_root)}",
                EXIT_AUTH,
            )
        code = _error_code(response)
        if status == 404 and code in (None, "repo_not_found", "not_found"):
            hint = (
                "if it is private, a token is needed: " + token_help(self.hub_root)
                if not self.has_token
                else "check the owner and the name, and that your token's user may read it"
            )
            return ClientError(f"{detail.rstrip('.')} at {self.url}; {hint}", EXIT_NOT_FOUND, code=code)
        return ClientError(detail, exit_code_for_status(status), code=code)

    def resolve(self, storage_url: str) -> str:
        """Return *storage_url* made absolute against the hub's scheme://host:port."""
        return urljoin(self.hub_root, storage_url)

    # -- the protocol

    def refs(self) -> dict[str, Any]:
        """Return ``{repo_id, domain, default_branch, branch_heads, capabilities?}``; 404 → ClientError(exit 5)."""
        answer = self._request("GET", "refs")
        self.capabilities = capabilities_of(answer)
        heads = answer.get("branch_heads") or {}
        if not isinstance(heads, dict) or not all(isinstance(b, str) and is_id(c) for b, c in heads.items()):
            raise ClientError("the hub's branch_heads are not {branch: 'sha256:…' id}", EXIT_SERVER)
        answer["branch_heads"] = heads
        return answer

    def filter_objects(self, object_ids: Iterable[str]) -> list[str]:
        """Return those of *object_ids* the repository does not hold (all of them if it does not exist yet)."""
        ids = list(dict.fromkeys(object_ids))
        missing: list[str] = []
        for start in range(0, len(ids), FILTER_BATCH):
            batch = ids[start : start + FILTER_BATCH]
            try:
                answer = self._request("POST", "filter-objects", {"object_ids": batch})
            except ClientError as exc:
                if exc.exit_code == EXIT_NOT_FOUND:
                    return ids
                raise
            found = answer.get("missing")
            if not isinstance(found, list):
                raise ClientError("the hub's filter-objects answer has no 'missing' list", EXIT_SERVER)
            asked = set(batch)
            missing.extend(oid for oid in found if oid in asked)
        return missing

    def upload(self, handle: IO[bytes], mpack_key: str, size: int) -> int:
        """Upload the pack in *handle* (positioned at 0) unless the hub holds it; return the bytes sent."""
        slot = self._request("POST", "mpack/upload", {"mpack_key": mpack_key, "size": size})
        if slot.get("exists"):
            return 0
        target = slot.get("upload_url")
        if not isinstance(target, str) or not target:
            raise ClientError("the hub's upload answer has no upload_url", EXIT_SERVER)
        method = str(slot.get("method") or "PUT").upper()
        progress = self.out.progress("upload", size)
        body = _UploadBody(handle, size, progress)
        try:
            response = self.transfer.request(
                method,
                self.resolve(target),
                data=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                timeout=TRANSFER_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ClientError(f"upload failed: {_network_reason(exc)}", EXIT_SERVER) from None
        finally:
            progress.close()
        if not response.ok:
            raise ClientError(f"upload refused: {_error_detail(response)}", exit_code_for_status(response.status_code))
        return size

    def push(
        self,
        *,
        mpack_key: str,
        branch: str,
        head_commit_id: str,
        force: bool,
        commits_count: int,
        blobs_count: int,
        mpack: bytes | None = None,
    ) -> dict[str, Any]:
        """Ask the hub to unpack an uploaded pack (or *mpack*, the pack itself) and move *branch*.

        409 → exit 4, 422 → exit 1.
        """
        body: dict[str, Any] = {
            "mpack_key": mpack_key,
            "branch": branch,
            "head_commit_id": head_commit_id,
            "force": force,
            "commits_count": commits_count,
            "blobs_count": blobs_count,
        }
        if mpack is not None:
            body["mpack"] = mpack
        return self._request("POST", "mpack/push", body)

    def push_pack(
        self, handle: IO[bytes], size: int, *, phases: PhaseHook = no_phases, **push: Any
    ) -> tuple[int, dict[str, Any]]:
        """Hand the pack in *handle* (*size* bytes) to the hub and push it; return (bytes sent, the push answer).

        *push* holds :meth:`push`'s keyword arguments (``mpack_key``, ``branch``,
        ``head_commit_id``, ``force``, ``commits_count``, ``blobs_count``). A
        pack of at most INLINE_PACK_MAX_BYTES goes in the push call itself when
        the hub lists ``push-inline`` (one round trip); a bigger one, any for an
        older hub, and one the hub refuses inline (413: a lower limit there) go
        through an upload slot first. Phases: "upload" (slot + PUT, only then), "push".
        """
        handle.seek(0)
        if PUSH_INLINE in self.capabilities and size <= INLINE_PACK_MAX_BYTES:
            data = handle.read()
            try:
                with phases("push"):
                    return len(data), self.push(**push, mpack=data)
            except ClientError as exc:
                if exc.code != "too_large":
                    raise
                self.out.note(f"the hub refused the pack inline ({exc.message}); uploading it")
            handle.seek(0)
        with phases("upload"):
            sent = self.upload(handle, push["mpack_key"], size)
        with phases("push"):
            return sent, self.push(**push)

    def fetch(self, want: list[str], have: list[str], capabilities: Iterable[str] = ()) -> dict[str, Any]:
        """Return ``{mpack_id, mpack_url, commit_count, snapshot_count, blob_count, size}`` for want/have.

        *capabilities* (e.g. ``["snapshot-delta"]``) are sent only when there are any,
        so a hub that knows none of them sees the request it always saw.
        """
        body: dict[str, Any] = {"want": want, "have": have}
        asked = list(dict.fromkeys(capabilities))
        if asked:
            body["capabilities"] = asked
        answer = self._request("POST", "mpack/fetch", body)
        if not isinstance(answer.get("mpack_url"), str) or not answer["mpack_url"]:
            raise ClientError("the hub's fetch answer has no mpack_url", EXIT_SERVER)
        return answer

    @contextlib.contextmanager
    def fetch_stream(
        self, want: list[str], have: list[str], capabilities: Iterable[str]
    ) -> Iterator[tuple[dict[str, Any], Iterator[bytes] | None]]:
        """Ask for a streamed fetch (``pack-stream``); yield (answer, the pack's bytes as they arrive).

        The answer is ``{commit_count, snapshot_count, blob_count, streamed: True}``
        and the pieces are read from the open reply (a broken transfer raises
        StreamCut). When the hub answered with a URL instead (it does not
        stream), yields that answer unchanged and None.
        """
        body = {"want": want, "have": have, "capabilities": list(dict.fromkeys([*capabilities, PACK_STREAM]))}
        response = self._send("POST", "mpack/fetch", body, stream=True)
        with response:
            if response.headers.get("Content-Type", "").split(";")[0].strip() != PACK_TYPE:
                answer = self._decoded(response, "mpack/fetch")
                if not isinstance(answer.get("mpack_url"), str) or not answer["mpack_url"]:
                    raise ClientError("the hub's fetch answer has no mpack_url", EXIT_SERVER)
                yield answer, None
                return
            counts = {}
            for name, header in PACK_COUNT_HEADERS.items():
                value = response.headers.get(header, "")
                counts[name] = int(value) if value.isdigit() else None
            yield {**counts, "streamed": True}, self._pieces(response, None, "the hub's pack stream was cut short")

    @contextlib.contextmanager
    def download_stream(self, url: str, expected_size: int | None = None) -> Iterator[Iterator[bytes]]:
        """Open the pack at *url* (no auth header); yield its bytes as they arrive.

        A transfer that breaks or ends short of *expected_size* raises StreamCut.
        """
        try:
            response = self.transfer.get(self.resolve(url), stream=True, timeout=TRANSFER_TIMEOUT)
        except requests.RequestException as exc:
            raise ClientError(f"download failed: {_network_reason(exc)}", EXIT_SERVER) from None
        with response:
            if not response.ok:
                raise ClientError(
                    f"download refused: {_error_detail(response)}", exit_code_for_status(response.status_code)
                )
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            yield self._pieces(response, total, "the download was cut short")

    def _pieces(self, response: requests.Response, total: int | None, cut: str) -> Iterator[bytes]:
        """Yield *response*'s body in pieces with a progress report; a broken or short transfer raises StreamCut."""
        progress = self.out.progress("download", total)
        received = 0
        try:
            for chunk in response.iter_content(CHUNK):
                received += len(chunk)
                progress.update(len(chunk))
                yield chunk
        except requests.RequestException as exc:
            raise StreamCut(f"{cut}: {_network_reason(exc)}") from None
        finally:
            progress.close()
        if total is not None and received < total:
            raise StreamCut(f"{cut} after {received} of {total} bytes")

    def api_root(self) -> str:
        """Return the hub's root URL as the REST API sees it (what precedes owner/name in the repository URL)."""
        parts = urlsplit(self.url)
        prefix = "/".join(parts.path.strip("/").split("/")[:-2])
        return f"{parts.scheme}://{parts.netloc}/" + (prefix + "/" if prefix else "")

    def api_url(self, suffix: str) -> str:
        """Return the REST API URL of this repository's *suffix* (no suffix: the repository itself)."""
        base = f"{self.api_root()}api/v1/repos/{self.owner}/{self.name}"
        return f"{base}/{suffix}" if suffix else base

    def _api(self, method: str, url: str, what: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call a REST API *url* with a JSON *body*; return the decoded map (ClientError on any failure)."""
        try:
            response = self.session.request(
                method,
                url,
                json=dict(body) if body is not None else None,
                headers={"Accept": JSON_TYPE},
                timeout=API_TIMEOUT,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise unreachable(self.api_root().rstrip("/"), exc) from None
        if not response.ok or response.is_redirect:
            raise self.failure(response, what)
        try:
            answer = response.json()
        except ValueError:
            raise ClientError(f"the hub sent an unreadable answer to {what}", EXIT_SERVER) from None
        if not isinstance(answer, dict):
            raise ClientError(f"the hub's answer to {what} is not a map", EXIT_SERVER)
        return answer

    def user(self) -> str | None:
        """Return the user name the token belongs to (``GET /api/v1/user``); None without a token or on an older hub.

        A token the hub refuses raises ClientError (exit 3).
        """
        if not self.has_token:
            return None
        try:
            answer = self._api("GET", f"{self.api_root()}api/v1/user", "the user lookup")
        except ClientError as exc:
            if exc.exit_code == EXIT_NOT_FOUND:
                return None  # a hub without the endpoint
            raise
        name = answer.get("username")
        return name if isinstance(name, str) and name else None

    def repository(self) -> dict[str, Any]:
        """Return the repository as the REST API shows it (``visibility``, ``default_branch``, ...)."""
        return self._api("GET", self.api_url(""), "the repository lookup")

    def create_repository(self, *, visibility: str, default_branch: str) -> dict[str, Any]:
        """Create this URL's repository under the token's user (``POST /api/v1/repos``) with *visibility*."""
        return self._api(
            "POST",
            f"{self.api_root()}api/v1/repos",
            "the repository creation",
            {"name": self.name, "visibility": visibility, "default_branch": default_branch},
        )

    def delete_branch(self, name: str) -> dict[str, Any]:
        """Delete branch *name* through ``DELETE /api/v1/repos/{owner}/{slug}/branches/{name}``; return it as it was.

        409 (the default branch, or one an open proposal uses) → exit 4, 404 → exit 5, 401/403 → exit 3.
        """
        return self._api("DELETE", self.api_url("branches/" + quote(name, safe="/")), "the branch delete")
