"""Talking to the hub: :class:`HubClient` (wire.md §3), Bearer auth, error decoding, exit codes, retries.

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

from musehub_client.feedback import Feedback, ProgressReport, Silent
from musehub_core.ids import is_id

# --- exit codes and errors ----------------------------------------------------------

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_SERVER = 6
EXIT_INTERRUPTED = 130

PROTOCOL_HEADER = "X-Muse-Protocol"
MSGPACK = "application/x-msgpack"
SNAPSHOT_DELTA = "snapshot-delta"  # the capability of wire.md §2.1

CHUNK = 1024 * 1024
FILTER_BATCH = 2000  # object ids per filter-objects call
MAX_ATTEMPTS = 5  # for 503 + Retry-After
CONNECTION_RETRIES = 2  # a refused or dropped connection, before any answer
MAX_RETRY_WAIT = 30.0
API_TIMEOUT = (15, 300)  # (connect, read) seconds; push verifies the whole pack before answering
TRANSFER_TIMEOUT = (15, 300)


class ClientError(Exception):
    """A failure to report as one line ``error: <message>`` and exit with *exit_code*."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


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


def normalize_url(url: str) -> str:
    """Return the repository URL without a trailing slash, or raise ClientError (usage) if it is not one."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
        raise ClientError(f"{url!r} is not a repository URL like http://host:8000/owner/slug", EXIT_USAGE)
    if parts.query or parts.fragment:
        raise ClientError(f"{url!r}: a repository URL has no query or fragment", EXIT_USAGE)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


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


def _network_reason(exc: requests.RequestException) -> str:
    reason: Any = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = str(reason)
    # urllib3 prefixes "<connection object at 0x…>: "; keep what a person can read.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    return text[:200]


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
        self.out: Feedback = out or Silent()
        self.session = _retrying_session()
        self.session.auth = _BearerAuth(token)
        self.session.headers.update({"Accept": MSGPACK, PROTOCOL_HEADER: "mpack"})
        self.transfer = _retrying_session()
        self.transfer.auth = _BearerAuth(None)

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
        url = f"{self.url}/{suffix}"
        data = msgpack.packb(dict(body), use_bin_type=True) if body is not None else None
        headers = {"Content-Type": MSGPACK} if data is not None else {}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=API_TIMEOUT)
            except requests.RequestException as exc:
                raise ClientError(f"cannot reach {url}: {_network_reason(exc)}", EXIT_SERVER) from None
            if response.status_code == 503 and attempt < MAX_ATTEMPTS and "Retry-After" in response.headers:
                wait = _retry_after(response.headers["Retry-After"])
                self.out.note(f"{_error_detail(response)} (retrying in {wait:g}s)")
                time.sleep(wait)
                continue
            if not response.ok:
                raise ClientError(_error_detail(response), exit_code_for_status(response.status_code))
            try:
                decoded = _decode_body(response)
            except Exception:
                raise ClientError(f"the hub sent an unreadable answer to {suffix}", EXIT_SERVER) from None
            if not isinstance(decoded, dict):
                raise ClientError(f"the hub's answer to {suffix} is not a map", EXIT_SERVER)
            return decoded
        raise AssertionError("unreachable")  # pragma: no cover

    def resolve(self, storage_url: str) -> str:
        """Return *storage_url* made absolute against the hub's scheme://host:port."""
        return urljoin(self.hub_root, storage_url)

    # -- the protocol

    def refs(self) -> dict[str, Any]:
        """Return ``{repo_id, domain, default_branch, branch_heads, capabilities?}``; 404 → ClientError(exit 5)."""
        answer = self._request("GET", "refs")
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
        self, *, mpack_key: str, branch: str, head_commit_id: str, force: bool, commits_count: int, blobs_count: int
    ) -> dict[str, Any]:
        """Ask the hub to unpack an uploaded pack and move *branch*; 409 → exit 4, 422 → exit 1."""
        return self._request(
            "POST",
            "mpack/push",
            {
                "mpack_key": mpack_key,
                "branch": branch,
                "head_commit_id": head_commit_id,
                "force": force,
                "commits_count": commits_count,
                "blobs_count": blobs_count,
            },
        )

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

    def download(self, url: str, handle: IO[bytes], expected_size: int | None = None) -> int:
        """Stream the pack at *url* (no auth header) into *handle*; return the bytes written."""
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
            progress = self.out.progress("download", total)
            written = 0
            try:
                for chunk in response.iter_content(CHUNK):
                    handle.write(chunk)
                    written += len(chunk)
                    progress.update(len(chunk))
            except requests.RequestException as exc:
                raise ClientError(f"download failed: {_network_reason(exc)}", EXIT_SERVER) from None
            finally:
                progress.close()
        handle.flush()
        if expected_size is not None and written != expected_size:
            raise integrity_error(f"the pack is {written} bytes, the hub announced {expected_size}")
        return written

    # -- the REST API (``/api/v1/repos/{owner}/{slug}/…``)

    def api_url(self, suffix: str) -> str:
        """Return the REST API URL of this repository's *suffix* (the hub's root is what precedes owner/slug)."""
        parts = urlsplit(self.url)
        segments = parts.path.strip("/").split("/")
        if len(segments) < 2:
            raise ClientError(f"{self.url!r} is not a repository URL like http://host:8000/owner/slug", EXIT_USAGE)
        prefix = "/".join(segments[:-2])
        root = f"{parts.scheme}://{parts.netloc}/" + (prefix + "/" if prefix else "")
        return f"{root}api/v1/repos/{segments[-2]}/{segments[-1]}/{suffix}"

    def delete_branch(self, name: str) -> dict[str, Any]:
        """Delete branch *name* through ``DELETE /api/v1/repos/{owner}/{slug}/branches/{name}``; return it as it was.

        409 (the default branch, or one an open proposal uses) → exit 4, 404 → exit 5, 401/403 → exit 3.
        """
        url = self.api_url("branches/" + quote(name, safe="/"))
        try:
            response = self.session.delete(url, headers={"Accept": "application/json"}, timeout=API_TIMEOUT)
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach {url}: {_network_reason(exc)}", EXIT_SERVER) from None
        if not response.ok:
            raise ClientError(_error_detail(response), exit_code_for_status(response.status_code))
        try:
            answer = response.json()
        except ValueError:
            raise ClientError("the hub sent an unreadable answer to the branch delete", EXIT_SERVER) from None
        if not isinstance(answer, dict):
            raise ClientError("the hub's answer to the branch delete is not a map", EXIT_SERVER)
        return answer
