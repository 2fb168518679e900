"""The reference MuseHub client: push a folder, clone, fetch and pull over the mpack protocol.

Usage::

    python -m wire.client push DIR URL [--branch B] [--force] [--message M] [--author A] [--token T]
    python -m wire.client clone URL DIR [--branch B] [--token T]
    python -m wire.client fetch [DIR] [--token T]
    python -m wire.client pull [DIR] [--token T]

``URL`` is a repository URL ``{hub}/{owner}/{slug}``, e.g.
``http://127.0.0.1:8000/alice/demo``. The token comes from ``--token`` or the
``MUSEHUB_TOKEN`` environment variable and travels as ``Authorization: Bearer``
to the hub only (never to storage URLs). ``-q`` silences progress and notes on
stderr; the one-line result summary still goes to stdout.

What each command does (wire.md §3):

- **push** scans DIR (regular files only; symlinks and the client's own
  ``.musehub/`` folder are skipped) into a manifest, makes one commit on top of
  the branch head, asks ``filter-objects`` which blobs the hub lacks, streams
  those blobs plus the commit and snapshot into one mpack in a temporary file,
  uploads it to the URL ``mpack/upload`` hands out and calls ``mpack/push``. On
  success DIR's state records the new head (DIR then tracks URL and branch). The
  parent is DIR's recorded head when DIR tracks this URL and branch, or when the
  branch is new on the hub (it forks from DIR's head); otherwise the remote head
  from ``/refs`` (none for a new branch). An unchanged tree whose head the hub
  already has prints "nothing to push".
- **clone** downloads the pack for the branch head, verifies every blob, commit
  and snapshot id, writes the head snapshot into DIR and records the state. The
  pack is kept in ``DIR/.musehub/packs/`` (it holds the history's blobs).
- **fetch** downloads only what the state does not hold into
  ``DIR/.musehub/packs/`` and records ``fetched_head``; the working tree is not
  touched.
- **pull** fetches, then moves the working tree to the fetched head: changed and
  new files are written, removed files are deleted, unchanged ones are left
  alone. It refuses (exit 4) before writing anything if a file it would change
  or delete has local modifications, or an untracked file is in the way.

State: ``DIR/.musehub/state.json`` =
``{"url", "branch", "head", "manifest": {path: object_id}, "commits": [commit ids], "fetched_head"?}``.

Exit codes: 0 success; 1 any other error; 2 usage error; 3 authentication or
permission refused (HTTP 401/403); 4 conflict (HTTP 409 non-fast-forward, or
pull refusing to overwrite local changes); 5 not found (HTTP 404); 6 server or
network error (HTTP 5xx, connection failure, downloaded data failing its
integrity checks); 130 interrupted. Errors are one line ``error: <detail>`` on
stderr.

This module imports no Django: only ``musehub_core.mpack``, ``musehub_core.ids`` and
``musehub_core.errors`` from the project, plus msgpack, zstandard and requests.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import msgpack
import requests

from musehub_core.errors import MalformedPack
from musehub_core.ids import blob_id, compute_commit_id, compute_snapshot_id, hex_of, is_id
from musehub_core.manifests import validate_path as _validate_manifest_path
from musehub_core.mpack import BlobEntry, MPackWriter, PackContents, PackLimits, decode_blob, encode_blob, index_mpack

# --- exit codes and errors ----------------------------------------------------------

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_SERVER = 6
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0  success
  1  any other error
  2  usage error
  3  authentication or permission refused (HTTP 401/403)
  4  conflict: non-fast-forward push (HTTP 409), or pull refusing to overwrite local changes
  5  not found (HTTP 404: repository, branch, commit or uploaded pack)
  6  server or network error (HTTP 5xx, connection failure, downloaded data failing its checks)
  130 interrupted

The token is read from --token or the MUSEHUB_TOKEN environment variable.
"""

STATE_DIR = ".musehub"
STATE_FILE = "state.json"
PACKS_DIR = "packs"
TMP_DIR = "tmp"
PROTOCOL_HEADER = "X-Muse-Protocol"
MSGPACK = "application/x-msgpack"

CHUNK = 1024 * 1024
FILTER_BATCH = 2000  # object ids per filter-objects call
MAX_HAVE = 10_000  # the hub refuses more have ids than this in one fetch
MAX_ATTEMPTS = 5  # for 503 + Retry-After
MAX_RETRY_WAIT = 30.0
API_TIMEOUT = (15, 300)  # (connect, read) seconds; push verifies the whole pack before answering
TRANSFER_TIMEOUT = (15, 300)
PROGRESS_MIN_BYTES = 1024 * 1024
PROGRESS_INTERVAL = 0.25

# Limits for packs this client reads: as generous as memory allows (one blob at a time).
CLIENT_LIMITS = PackLimits(
    max_pack_bytes=1024**4,
    max_commits=10_000_000,
    max_snapshots=10_000_000,
    max_blobs=50_000_000,
    max_manifest_entries=10_000_000,
)
MAX_FILE_BYTES = CLIENT_LIMITS.max_blob_bytes


class ClientError(Exception):
    """A failure to report as one line ``error: <message>`` and exit with *exit_code*."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def exit_code_for_status(status: int) -> int:
    """Return the exit code for an HTTP error *status* (see the module docstring)."""
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


# --- output -----------------------------------------------------------------------------


def format_bytes(n: int) -> str:
    """Return *n* bytes as a short human string (``512 B``, ``1.5 MiB``)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def short(object_id: str | None) -> str:
    return hex_of(object_id)[:12] if object_id else "(none)"


class Output:
    """Where the client talks: results to stdout, notes and progress to stderr (unless quiet)."""

    def __init__(self, quiet: bool = False, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.quiet = quiet
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, message: str) -> None:
        print(message, file=self.stdout, flush=True)

    def note(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def progress(self, label: str, total: int | None) -> Progress:
        return Progress(label, total, self.stderr, enabled=not self.quiet)


class Progress:
    """A percentage/bytes line on stderr, redrawn in place at most 1/PROGRESS_INTERVAL times a second.

    Shown only for transfers larger than 1 MiB (or of unknown size once they pass 1 MiB).
    """

    def __init__(self, label: str, total: int | None, stream: IO[str], *, enabled: bool = True) -> None:
        self.label = label
        self.total = total if total and total > 0 else None
        self.stream = stream
        self.enabled = enabled and (self.total is None or self.total > PROGRESS_MIN_BYTES)
        self.done = 0
        self._last = 0.0
        self._drawn = False

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled or (self.total is None and self.done <= PROGRESS_MIN_BYTES):
            return
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            text = f"{self.label}: {pct:3d}% ({format_bytes(self.done)} / {format_bytes(self.total)})"
        else:
            text = f"{self.label}: {format_bytes(self.done)}"
        self.stream.write(f"\r{text:<60}")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line (only if anything was drawn)."""
        if self._drawn:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


class _UploadBody:
    """A sized, file-like request body that reports progress as requests streams it."""

    def __init__(self, handle: IO[bytes], size: int, progress: Progress) -> None:
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


# --- the hub ----------------------------------------------------------------------------


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


class HubClient:
    """Speaks the mpack protocol to one repository over one requests.Session.

    Every method raises :class:`ClientError` (with the exit code of the failure)
    instead of returning an error. API calls carry the Bearer token; transfers to
    and from storage URLs never do.
    """

    def __init__(self, url: str, token: str | None = None, *, out: Output | None = None) -> None:
        self.url = normalize_url(url)
        parts = urlsplit(self.url)
        self.hub_root = f"{parts.scheme}://{parts.netloc}/"
        self.out = out or Output()
        self.session = requests.Session()
        self.session.auth = _BearerAuth(token)
        self.session.headers.update({"Accept": MSGPACK, PROTOCOL_HEADER: "mpack"})
        self.transfer = requests.Session()
        self.transfer.auth = _BearerAuth(None)

    def close(self) -> None:
        self.session.close()
        self.transfer.close()

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
        """Return ``{repo_id, domain, default_branch, branch_heads}``; 404 → ClientError(exit 5)."""
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

    def fetch(self, want: list[str], have: list[str]) -> dict[str, Any]:
        """Return ``{mpack_id, mpack_url, commit_count, snapshot_count, blob_count, size}`` for want/have."""
        answer = self._request("POST", "mpack/fetch", {"want": want, "have": have})
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


def _retry_after(value: str) -> float:
    try:
        wait = float(value)
    except ValueError:
        wait = 2.0
    return min(max(wait, 0.5), MAX_RETRY_WAIT)


# --- state ------------------------------------------------------------------------------


@dataclass
class State:
    """What a working directory knows about its remote (``DIR/.musehub/state.json``)."""

    url: str
    branch: str
    head: str | None
    manifest: dict[str, str] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)
    fetched_head: str | None = None

    @staticmethod
    def path(root: Path) -> Path:
        return root / STATE_DIR / STATE_FILE

    @classmethod
    def load(cls, root: Path) -> State | None:
        """Return the state of *root*, None when it has none; a damaged file raises ClientError."""
        path = cls.path(root)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = cls(
                url=normalize_url(data["url"]),
                branch=str(data["branch"]),
                head=data.get("head") or None,
                manifest=dict(data.get("manifest") or {}),
                commits=list(data.get("commits") or []),
                fetched_head=data.get("fetched_head") or None,
            )
        except (ValueError, KeyError, TypeError, ClientError) as exc:
            raise ClientError(f"{path} is damaged ({exc}); clone again", EXIT_ERROR) from None
        ids = [state.head, state.fetched_head, *state.manifest.values(), *state.commits]
        if not all(i is None or is_id(i) for i in ids):
            raise ClientError(f"{path} is damaged (an id is not 'sha256:' + 64 hex); clone again", EXIT_ERROR)
        return state

    def save(self, root: Path) -> None:
        """Write the state atomically."""
        data: dict[str, Any] = {
            "url": self.url,
            "branch": self.branch,
            "head": self.head,
            "manifest": dict(sorted(self.manifest.items())),
            "commits": list(dict.fromkeys(self.commits)),
        }
        if self.fetched_head and self.fetched_head != self.head:
            data["fetched_head"] = self.fetched_head
        path = self.path(root)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STATE_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def have(self) -> list[str]:
        """Return the commit ids to send as ``have``: heads first, then newest first, at most MAX_HAVE."""
        ordered = [c for c in (self.fetched_head, self.head) if c]
        ordered.extend(reversed(self.commits))
        return list(dict.fromkeys(ordered))[:MAX_HAVE]


# --- the working tree -------------------------------------------------------------------


def hash_file(path: Path) -> str:
    """Return the object id of the file at *path*, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def to_manifest_path(relative: str) -> str:
    """Return *relative* (a path under the tree, '/'-separated) if a manifest can hold it, else raise ClientError."""
    try:
        relative.encode("utf-8")
        return _validate_manifest_path(relative, "the tree")
    except UnicodeEncodeError:
        raise ClientError(f"{relative!r} is not valid UTF-8; rename it to push", EXIT_ERROR) from None
    except MalformedPack as exc:
        raise ClientError(f"cannot push {relative!r}: {exc.message}", EXIT_ERROR) from None


def iter_tree(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield (manifest path, file path) for every regular file under *root*, sorted.

    Symlinks (to files or folders) and the top-level ``.musehub/`` folder are skipped.
    """
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        relative_dir = here.relative_to(root).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        if not prefix:
            dirnames[:] = [d for d in dirnames if d != STATE_DIR]
        dirnames[:] = sorted(d for d in dirnames if not (here / d).is_symlink())
        for name in sorted(filenames):
            path = here / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISREG(mode):
                yield to_manifest_path(prefix + name), path


STAT_CACHE_FILE = "stat-cache.json"
# A file modified this recently may change again within the same mtime tick: hash it, never cache it.
RACY_SECONDS = 2


def scan_tree(root: Path) -> dict[str, str]:
    """Return the manifest {POSIX relative path: object id} of the regular files under *root*.

    Like git's index, ``DIR/.musehub/stat-cache.json`` remembers each file's
    size, modification time and object id, so a file whose size and mtime are
    unchanged is not read again; files modified in the last RACY_SECONDS are
    always hashed.
    """
    cache_path = root / STATE_DIR / STAT_CACHE_FILE
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    fresh: dict[str, list] = {}
    manifest: dict[str, str] = {}
    racy_after = (time.time() - RACY_SECONDS) * 1e9
    for relative, path in iter_tree(root):
        info = path.stat()
        if info.st_size > MAX_FILE_BYTES:
            raise ClientError(
                f"{relative} is larger than {format_bytes(MAX_FILE_BYTES)}, the largest blob a pack holds"
            )
        cached = cache.get(relative)
        if isinstance(cached, list) and cached[:2] == [info.st_size, info.st_mtime_ns] and is_id(cached[2]):
            manifest[relative] = cached[2]
        else:
            manifest[relative] = hash_file(path)
        if info.st_mtime_ns < racy_after:
            fresh[relative] = [info.st_size, info.st_mtime_ns, manifest[relative]]
    with contextlib.suppress(OSError):  # the cache only saves time; a read-only folder still pushes
        cache_path.parent.mkdir(exist_ok=True)
        tmp = cache_path.with_name(f".{STAT_CACHE_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(fresh, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, cache_path)
    return manifest


def local_oid(root: Path, relative: str) -> str | None:
    """Return the object id of the regular file at *relative*, None if nothing is there, "" if something else is."""
    path = root / relative
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(mode):
        return ""
    return hash_file(path)


def safe_target(root: Path, relative: str) -> Path:
    """Return where manifest path *relative* lives under *root*; refuse paths that escape it.

    Refuses malformed paths, the reserved ``.musehub/`` folder and any path whose
    existing parent is a symlink (writing through it could land outside *root*).
    """
    try:
        _validate_manifest_path(relative, "the snapshot")
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    parts = relative.split("/")
    if parts[0] == STATE_DIR:
        raise ClientError(f"the snapshot holds {relative!r}, inside the client's reserved {STATE_DIR}/ folder")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ClientError(f"refusing to write {relative!r}: {current} is a symlink", EXIT_CONFLICT)
    return root.joinpath(*parts)


def write_file(root: Path, relative: str, content: bytes) -> None:
    """Write *content* to manifest path *relative* under *root* atomically, creating parent folders."""
    target = safe_target(root, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        _remove_empty_folders(target)  # a folder emptied by this update; fails if anything is left in it
    tmp = target.with_name(f".{target.name}.musehub-{uuid.uuid4().hex[:12]}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(content)
        if target.is_file() and not target.is_symlink():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))  # keep an existing file's mode (e.g. +x)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _remove_empty_folders(folder: Path) -> None:
    """Remove *folder* and the (empty) folders inside it; raise OSError if any file is left."""
    for dirpath, _dirnames, _filenames in os.walk(folder, topdown=False):
        os.rmdir(dirpath)


def is_reserved(relative: str) -> bool:
    """Return True for manifest paths inside the client's own ``.musehub/`` folder (never checked out)."""
    return relative.split("/", 1)[0] == STATE_DIR


def checkout_manifest(manifest: Mapping[str, str], out: Output) -> dict[str, str]:
    """Return the entries of *manifest* this client writes to disk, noting reserved ones it skips."""
    kept = {path: oid for path, oid in manifest.items() if not is_reserved(path)}
    for path in sorted(set(manifest) - set(kept)):
        out.note(f"warning: not writing {path!r}: {STATE_DIR}/ is reserved for the client's state")
    return kept


def remove_file(root: Path, relative: str) -> None:
    """Delete manifest path *relative* and then any folders it leaves empty (never *root* itself)."""
    target = safe_target(root, relative)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    parent = target.parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


# --- packs ------------------------------------------------------------------------------


def missing_blob_paths(client: HubClient, manifest: Mapping[str, str], known: Iterable[str] = ()) -> dict[str, str]:
    """Return {object_id: a path holding it} for the blobs of *manifest* the hub lacks.

    Blobs in *known* (those of a parent the hub has) are not asked about.
    """
    held = set(known)
    missing = set(client.filter_objects(oid for oid in manifest.values() if oid not in held))
    blob_paths: dict[str, str] = {}
    for relative, oid in manifest.items():
        if oid in missing:
            blob_paths.setdefault(oid, relative)
    return blob_paths


def build_push_pack(
    out: IO[bytes],
    root: Path,
    *,
    commit: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    blob_paths: Mapping[str, str],
    branch: str,
) -> tuple[str, int]:
    """Stream one commit, its snapshot and the blobs {object id: manifest path} into *out*; return (key, size).

    Files are read one at a time; a file whose content no longer hashes to its
    manifest id (edited during the push) raises ClientError.
    """
    writer = MPackWriter(out)
    writer.write_commits([commit])
    writer.write_snapshots([snapshot])
    writer.begin_blobs(len(blob_paths))
    for oid, relative in blob_paths.items():
        raw = (root / relative).read_bytes()
        if blob_id(raw) != oid:
            raise ClientError(f"{relative} changed while pushing; push again")
        stored, encoding = encode_blob(raw)
        writer.write_blob(oid, stored, encoding)
    return writer.finish({branch: commit["commit_id"]})


def verify_history(contents: PackContents) -> None:
    """Recompute every snapshot and commit id in a downloaded pack; raise ClientError (exit 6) on a mismatch."""
    for snap in contents.snapshots:
        if compute_snapshot_id(snap["manifest"]) != snap["snapshot_id"]:
            raise integrity_error(f"snapshot {snap['snapshot_id']} does not match its manifest")
    for commit in contents.commits:
        expected = compute_commit_id(
            commit["parent_ids"], commit["snapshot_id"], commit["message"], commit["committed_at"]
        )
        if expected != commit["commit_id"]:
            raise integrity_error(f"commit {commit['commit_id']} does not match its content")


def verify_pack(path: Path, *, mpack_id: object = None, size: int | None = None) -> PackContents:
    """Index the pack at *path* verifying every blob hash and every id; check its key and size if given."""
    try:
        with open(path, "rb") as handle:
            contents = index_mpack(handle, limits=CLIENT_LIMITS, verify=True)
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    if is_id(mpack_id) and contents.digest != mpack_id:
        raise integrity_error(f"the pack hashes to {contents.digest}, not to its id {mpack_id}")
    if size is not None and contents.size != size:
        raise integrity_error(f"the pack is {contents.size} bytes, the hub announced {size}")
    verify_history(contents)
    return contents


def read_blob(handle: IO[bytes], entry: BlobEntry) -> bytes:
    """Return the raw bytes of *entry* read at its (offset, length) in the open pack, hash re-checked."""
    handle.seek(entry.offset)
    stored = handle.read(entry.length)
    if len(stored) != entry.length:
        raise integrity_error(f"blob {entry.object_id} runs past the end of its pack")
    try:
        raw = decode_blob(stored, entry.encoding, max_bytes=CLIENT_LIMITS.max_blob_bytes, where=entry.object_id)
    except MalformedPack as exc:
        raise integrity_error(exc.message) from None
    if blob_id(raw) != entry.object_id:
        raise integrity_error(f"blob {entry.object_id} does not hash to its id")
    return raw


class PackStore:
    """The packs of one working directory (``.musehub/packs``): commits, snapshots and blob locations.

    Reading a blob always re-checks its hash, so packs are indexed without
    verification here.
    """

    def __init__(self) -> None:
        self.commits: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, str]] = {}
        self.blobs: dict[str, tuple[Path, BlobEntry]] = {}

    def add(self, path: Path, contents: PackContents) -> None:
        for commit in contents.commits:
            self.commits[commit["commit_id"]] = commit
        for snap in contents.snapshots:
            self.snapshots[snap["snapshot_id"]] = snap["manifest"]
        for entry in contents.blobs:
            self.blobs.setdefault(entry.object_id, (path, entry))

    @classmethod
    def open(cls, root: Path) -> PackStore:
        store = cls()
        for path in sorted((root / STATE_DIR / PACKS_DIR).glob("*.mpack")):
            try:
                with open(path, "rb") as handle:
                    contents = index_mpack(handle, limits=CLIENT_LIMITS, verify=False)
            except (MalformedPack, OSError):
                continue  # a damaged pack only loses its content; blobs are re-checked on read
            store.add(path, contents)
        return store

    def manifest_of(self, commit_id: str) -> dict[str, str] | None:
        commit = self.commits.get(commit_id)
        return None if commit is None else self.snapshots.get(commit["snapshot_id"])

    def read(self, object_id: str) -> bytes:
        path, entry = self.blobs[object_id]
        with open(path, "rb") as handle:
            return read_blob(handle, entry)


@dataclass
class Downloaded:
    """A fetch pack on disk, verified."""

    path: Path
    contents: PackContents
    answer: dict[str, Any]


def download_pack(client: HubClient, want: list[str], have: list[str], folder: Path) -> Downloaded:
    """Ask the hub for a pack taking *have* to *want*, stream it into *folder* and verify it.

    The file is named ``<hex of mpack id>.mpack``; on failure nothing is left behind.
    """
    answer = client.fetch(want, have)
    folder.mkdir(parents=True, exist_ok=True)
    size = answer.get("size") if isinstance(answer.get("size"), int) else None
    handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".download-", suffix=".part", delete=False)  # noqa: SIM115
    part = Path(handle.name)
    try:
        with handle:
            client.download(answer["mpack_url"], handle, size)
        contents = verify_pack(part, mpack_id=answer.get("mpack_id"), size=size)
        final = folder / f"{hex_of(contents.digest)}.mpack"
        os.replace(part, final)
    except BaseException:
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    return Downloaded(final, contents, answer)


# --- commands ---------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _default_author() -> str:
    env = os.environ.get("MUSEHUB_AUTHOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def make_commit(
    manifest: Mapping[str, str], parent: str | None, *, branch: str, message: str, author: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (commit dict, snapshot dict) for *manifest* on top of *parent*."""
    committed_at = _now()
    snapshot_id = compute_snapshot_id(manifest)
    parents = [parent] if parent else []
    commit = {
        "commit_id": compute_commit_id(parents, snapshot_id, message, committed_at),
        "parent_ids": parents,
        "snapshot_id": snapshot_id,
        "branch": branch,
        "message": message,
        "author": author,
        "committed_at": committed_at,
    }
    snapshot = {"snapshot_id": snapshot_id, "manifest": dict(manifest), "created_at": committed_at}
    return commit, snapshot


def cmd_push(args: argparse.Namespace, out: Output) -> int:
    """Snapshot DIR, commit it on top of the branch head and push it (see the module docstring)."""
    started = time.monotonic()
    root = Path(args.dir)
    if not root.is_dir():
        raise ClientError(f"{root} is not a folder")
    client = HubClient(args.url, _token(args), out=out)
    state = State.load(root)
    tracks_url = state is not None and state.url == client.url
    try:
        refs: dict[str, Any] = client.refs()
    except ClientError as exc:
        if exc.exit_code != EXIT_NOT_FOUND:
            raise
        refs = {"branch_heads": {}}  # a repository that does not exist yet (the hub may create it)
    heads: dict[str, str] = refs["branch_heads"]
    branch = args.branch or (state.branch if state and tracks_url else None) or refs.get("default_branch") or "main"
    remote_head = heads.get(branch)
    tracks_branch = state is not None and tracks_url and state.branch == branch
    # Build on DIR's own head for its branch, or for a branch new on the hub (it forks from DIR's head).
    use_local = state is not None and tracks_url and (tracks_branch or remote_head is None)
    parent = state.head if use_local and state is not None else remote_head

    manifest = scan_tree(root)
    if state is not None and tracks_branch and parent and manifest == state.manifest and remote_head == parent:
        out.result(f"nothing to push: {branch} is at {short(parent)} and the tree is unchanged")
        return EXIT_OK

    commit, snapshot = make_commit(
        manifest, parent, branch=branch, message=args.message or "Push from the MuseHub client", author=_author(args)
    )
    # The hub holds every blob of DIR's recorded head when that head is the parent.
    known = state.manifest.values() if state is not None and tracks_url and parent == state.head else ()
    blob_paths = missing_blob_paths(client, manifest, known)

    with tempfile.TemporaryFile(prefix="musehub-push-", suffix=".mpack") as handle:
        mpack_key, size = build_push_pack(
            handle, root, commit=commit, snapshot=snapshot, blob_paths=blob_paths, branch=branch
        )
        handle.seek(0)
        sent = client.upload(handle, mpack_key, size)
    answer = client.push(
        mpack_key=mpack_key,
        branch=branch,
        head_commit_id=commit["commit_id"],
        force=bool(args.force),
        commits_count=1,
        blobs_count=len(blob_paths),
    )
    if answer.get("head_commit_id") not in (None, commit["commit_id"]):
        raise ClientError(f"the hub moved {branch} to {answer.get('head_commit_id')}, not to our commit", EXIT_SERVER)

    known = state.commits if state is not None and tracks_url else []
    State(
        url=client.url,
        branch=branch,
        head=commit["commit_id"],
        manifest=manifest,
        commits=[*known, commit["commit_id"]],
    ).save(root)
    elapsed = time.monotonic() - started
    out.result(
        f"pushed 1 commit, {plural(len(blob_paths), 'blob')}, {format_bytes(sent)} uploaded "
        f"(pack {format_bytes(size)}) to {client.url} {branch} at {short(commit['commit_id'])} in {elapsed:.1f}s"
    )
    return EXIT_OK


def cmd_clone(args: argparse.Namespace, out: Output) -> int:
    """Download the branch head into a new (or empty) DIR and record the state."""
    started = time.monotonic()
    root = Path(args.dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ClientError(f"{root} already exists and is not an empty folder")
    client = HubClient(args.url, _token(args), out=out)
    refs = client.refs()
    heads: dict[str, str] = refs["branch_heads"]
    branch = args.branch or refs.get("default_branch") or "main"
    head = heads.get(branch)
    if head is None and heads:
        raise ClientError(f"{client.url} has no branch {branch!r}", EXIT_NOT_FOUND)

    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if head is None:
            State(url=client.url, branch=branch, head=None).save(root)
            out.result(f"cloned an empty repository {client.url} into {root}")
            return EXIT_OK
        pack = download_pack(client, [head], [], root / STATE_DIR / PACKS_DIR)
        store = PackStore()
        store.add(pack.path, pack.contents)
        manifest = store.manifest_of(head)
        if manifest is None:
            raise integrity_error(f"the pack does not hold commit {head} and its snapshot")
        files = checkout_manifest(manifest, out)
        with open(pack.path, "rb") as handle:
            for relative, oid in sorted(files.items()):
                if oid not in store.blobs:
                    raise integrity_error(f"the pack lacks blob {oid} of {relative}")
                write_file(root, relative, read_blob(handle, store.blobs[oid][1]))
        State(
            url=client.url,
            branch=branch,
            head=head,
            manifest=manifest,
            commits=[c["commit_id"] for c in pack.contents.commits],
        ).save(root)
    except BaseException:
        if created:
            _remove_tree(root)
        else:
            _empty_folder(root)
        raise
    elapsed = time.monotonic() - started
    out.result(
        f"cloned {client.url} {branch} at {short(head)} into {root}: {plural(len(files), 'file')}, "
        f"{plural(len(pack.contents.commits), 'commit')}, {format_bytes(pack.contents.size)} in {elapsed:.1f}s"
    )
    return EXIT_OK


def _remove_tree(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def _empty_folder(root: Path) -> None:
    """Remove everything inside *root* (a folder that was empty before a failed clone)."""
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_tree(child)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def _load_state(directory: str) -> tuple[Path, State]:
    root = Path(directory)
    state = State.load(root)
    if state is None:
        raise ClientError(f"{root} is not a MuseHub working folder (no {STATE_DIR}/{STATE_FILE}); clone first")
    return root, state


@dataclass
class FetchResult:
    remote_head: str | None  # None only while the branch has never existed (an empty clone)
    commits: int = 0
    blobs: int = 0
    size: int = 0


def fetch_into(root: Path, state: State, client: HubClient, out: Output) -> FetchResult:
    """Download what *state* lacks of its branch into ``.musehub/packs`` and record ``fetched_head``."""
    refs = client.refs()
    remote = refs["branch_heads"].get(state.branch)
    if remote is None:
        if state.head is None:
            return FetchResult(None)  # cloned empty, still empty
        raise ClientError(f"{state.url} has no branch {state.branch!r} any more", EXIT_NOT_FOUND)
    result = FetchResult(remote)
    if remote in (state.head, state.fetched_head):
        state.fetched_head = remote
        state.save(root)
        return result
    pack = download_pack(client, [remote], state.have(), root / STATE_DIR / PACKS_DIR)
    pack_commits = [c["commit_id"] for c in pack.contents.commits]
    if remote not in pack_commits and remote not in state.commits:
        pack.path.unlink(missing_ok=True)
        raise integrity_error(f"the fetch pack does not hold the branch head {remote}")
    if not pack.contents.commits and not pack.contents.blobs:
        pack.path.unlink(missing_ok=True)
    state.commits = [*state.commits, *pack_commits]
    state.fetched_head = remote
    state.save(root)
    result.commits, result.blobs, result.size = len(pack_commits), len(pack.contents.blobs), pack.contents.size
    return result


def _up_to_date(state: State) -> str:
    if state.head is None:
        return f"already up to date: {state.branch} does not exist yet (empty repository)"
    return f"already up to date: {state.branch} is at {short(state.head)}"


def cmd_fetch(args: argparse.Namespace, out: Output) -> int:
    """Fetch new history into ``.musehub/packs`` without touching the working tree."""
    root, state = _load_state(args.dir)
    client = HubClient(state.url, _token(args), out=out)
    result = fetch_into(root, state, client, out)
    if result.remote_head == state.head:
        out.result(_up_to_date(state))
    elif not result.commits and not result.blobs:
        out.result(f"{state.branch} is at {short(result.remote_head)} (already fetched); run pull to update the tree")
    else:
        out.result(
            f"fetched {plural(result.commits, 'commit')}, {plural(result.blobs, 'blob')} "
            f"({format_bytes(result.size)}): {state.branch} is at {short(result.remote_head)}; run pull to update the tree"
        )
    return EXIT_OK


@dataclass
class TreeUpdate:
    """What moving the working tree from one manifest to another does."""

    writes: dict[str, str]  # path → object id to write
    deletes: list[str]
    conflicts: list[str]


def plan_update(root: Path, old: Mapping[str, str], new: Mapping[str, str]) -> TreeUpdate:
    """Plan moving *root* from manifest *old* to *new*, listing local changes that would be lost."""
    update = TreeUpdate(writes={}, deletes=[], conflicts=[])
    old = {p: o for p, o in old.items() if not is_reserved(p)}
    new = {p: o for p, o in new.items() if not is_reserved(p)}
    for relative in sorted(set(old) - set(new)):
        current = local_oid(root, relative)
        if current is None:
            continue
        if current == old[relative]:
            update.deletes.append(relative)
        else:
            update.conflicts.append(f"{relative} (modified here, deleted upstream)")
    deleting = set(update.deletes)
    for relative, oid in sorted(new.items()):
        if old.get(relative) == oid:
            continue
        blocker = _blocking_parent(root, relative, deleting)
        if blocker:
            update.conflicts.append(f"{relative} ({blocker} is in the way)")
            continue
        current = local_oid(root, relative)
        if current == oid:
            continue
        if current == "" and _emptied_folder(root, relative, deleting):
            current = None
        if current is None or (relative in old and current == old[relative]):
            update.writes[relative] = oid
        elif relative in old:
            update.conflicts.append(f"{relative} (modified here and upstream)")
        else:
            update.conflicts.append(f"{relative} (untracked here, added upstream)")
    return update


def _emptied_folder(root: Path, relative: str, deleting: set[str]) -> bool:
    """Return True when *relative* is a real folder holding only files this update deletes (and folders)."""
    folder = root / relative
    if folder.is_symlink() or not folder.is_dir():
        return False
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if any((here / d).is_symlink() for d in dirnames):
            return False
        for name in filenames:
            if (here / name).relative_to(root).as_posix() not in deleting:
                return False
    return True


def _blocking_parent(root: Path, relative: str, deleting: set[str]) -> str | None:
    """Return a parent of *relative* that exists and is not a folder (and is not about to be deleted)."""
    parts = relative.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        path = root / prefix
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            if prefix in deleting and not path.is_symlink():
                return None
            return prefix
        if not path.exists():
            return None
    return None


def _gather_sources(
    root: Path, state: State, store: PackStore, needed: set[str], stage: Path
) -> tuple[dict[str, Path], set[str]]:
    """Copy blobs not in any pack but present unmodified in the tree into *stage*; return (staged, still missing)."""
    staged: dict[str, Path] = {}
    wanted = needed - set(store.blobs)
    by_oid: dict[str, list[str]] = {}
    for relative, oid in state.manifest.items():
        if oid in wanted:
            by_oid.setdefault(oid, []).append(relative)
    for oid, paths in by_oid.items():
        for relative in paths:
            path = root / relative
            try:
                if not path.is_file() or path.is_symlink():
                    continue
                raw = path.read_bytes()
            except OSError:
                continue
            if blob_id(raw) == oid:
                stage.mkdir(parents=True, exist_ok=True)
                staged[oid] = stage / hex_of(oid)
                staged[oid].write_bytes(raw)
                break
    return staged, wanted - set(staged)


def cmd_pull(args: argparse.Namespace, out: Output) -> int:
    """Fetch, then move the working tree to the fetched head (refusing to overwrite local changes)."""
    root, state = _load_state(args.dir)
    client = HubClient(state.url, _token(args), out=out)
    result = fetch_into(root, state, client, out)
    target = result.remote_head
    if target is None or target == state.head:
        out.result(_up_to_date(state))
        return EXIT_OK

    store = PackStore.open(root)
    new = store.manifest_of(target)
    stage = root / STATE_DIR / TMP_DIR / uuid.uuid4().hex
    try:
        if new is None:
            out.note("the local packs lack the new head's snapshot; downloading it in full")
            pack = download_pack(client, [target], [], stage)
            store.add(pack.path, pack.contents)
            new = store.manifest_of(target)
            if new is None:
                raise integrity_error(f"the pack does not hold commit {target} and its snapshot")
        update = plan_update(root, state.manifest, new)
        if update.conflicts:
            shown = "; ".join(update.conflicts[:5]) + (
                f"; and {len(update.conflicts) - 5} more" if len(update.conflicts) > 5 else ""
            )
            raise ClientError(f"pull would overwrite local changes: {shown}", EXIT_CONFLICT)
        needed = set(update.writes.values())
        staged, missing = _gather_sources(root, state, store, needed, stage)
        if missing:
            out.note(f"{plural(len(missing), 'blob')} not held locally; downloading {short(target)} in full")
            pack = download_pack(client, [target], [], stage)
            store.add(pack.path, pack.contents)
            lacking = missing - set(store.blobs)
            if lacking:
                raise integrity_error(f"the hub's pack lacks blob {sorted(lacking)[0]}")
        for relative in update.deletes:
            remove_file(root, relative)
        for relative, oid in update.writes.items():
            content = staged[oid].read_bytes() if oid in staged else store.read(oid)
            if oid in staged and blob_id(content) != oid:
                raise integrity_error(f"staged blob {oid} changed")
            write_file(root, relative, content)
    finally:
        _remove_tree(stage)
        with contextlib.suppress(OSError):
            (root / STATE_DIR / TMP_DIR).rmdir()

    old_head = state.head
    state.head = target
    state.manifest = dict(new)
    state.fetched_head = None
    state.save(root)
    out.result(
        f"updated {state.branch} {short(old_head)} → {short(target)}: "
        f"{plural(len(update.writes), 'file')} written, {plural(len(update.deletes), 'file')} deleted"
        + (f" ({plural(result.commits, 'commit')} fetched)" if result.commits else "")
    )
    return EXIT_OK


# --- command line -----------------------------------------------------------------------


def _token(args: argparse.Namespace) -> str | None:
    return getattr(args, "token", None) or os.environ.get("MUSEHUB_TOKEN") or None


def _author(args: argparse.Namespace) -> str:
    return args.author or _default_author()


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``python -m wire.client``."""
    parser = argparse.ArgumentParser(
        prog="python -m wire.client",
        description="The reference MuseHub client: push a folder, clone, fetch and pull over the mpack protocol.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or notes on stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--token", help="API token (default: $MUSEHUB_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace, Output], int], summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=summary,
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    push = add("push", cmd_push, "commit the folder DIR and push it to the repository URL")
    push.add_argument("dir", metavar="DIR")
    push.add_argument("url", metavar="URL", help="repository URL, e.g. http://127.0.0.1:8000/alice/demo")
    push.add_argument("--branch", "-b", help="branch to push (default: the tracked branch, else the default branch)")
    push.add_argument("--force", "-f", action="store_true", help="move the branch even if not a fast-forward")
    push.add_argument("--message", "-m", help="commit message")
    push.add_argument("--author", help="commit author (default: $MUSEHUB_AUTHOR or your user name)")

    clone = add("clone", cmd_clone, "download a branch of the repository URL into the new folder DIR")
    clone.add_argument("url", metavar="URL")
    clone.add_argument("dir", metavar="DIR")
    clone.add_argument("--branch", "-b", help="branch to clone (default: the repository's default branch)")

    fetch = add("fetch", cmd_fetch, "download new history into DIR/.musehub without touching the files")
    fetch.add_argument("dir", metavar="DIR", nargs="?", default=".")

    pull = add("pull", cmd_pull, "fetch, then update the files of DIR to the branch head")
    pull.add_argument("dir", metavar="DIR", nargs="?", default=".")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the client with *argv* (default: sys.argv[1:]) and return the exit code; never raises."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_USAGE)
    out = Output(quiet=args.quiet)
    try:
        return args.handler(args, out)
    except ClientError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MalformedPack as exc:
        print(f"error: integrity check failed: {exc.message}", file=sys.stderr)
        return EXIT_SERVER
    except OSError as exc:
        print(f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # a bug: still one line, no traceback
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
