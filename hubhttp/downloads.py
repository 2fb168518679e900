"""Downloads of repository bytes: byte ranges, streamed replies, and no active content on the hub's origin.

Shared by the REST ``raw/`` route (``api.views.RawView`` answers with
:func:`raw_file_response`) and the filesystem backend's signed storage URLs
(``wire.views.SignedStorageView``); what they promise is written down in
``docs/security.md`` ("Downloads").

- :func:`requested_range` reads one ``Range: bytes=…`` header (RFC 9110 §14):
  ``a-b``, ``a-`` and ``-n``. Several ranges in one header are answered with the
  whole file (200), which RFC 9110 allows, as it allows ignoring a malformed
  header; a range starting past the end is RangeNotSatisfiable (416,
  ``Content-Range: bytes */size``). :func:`if_range_holds` applies ``If-Range``.
- :func:`raw_type` chooses the Content-Type and disposition of a repository
  file: a type a browser would run or render as a page (HTML, SVG, XML, XHTML,
  JavaScript, CSS, PDF, …: :func:`is_active`) is never served as itself on the
  hub's origin, but as ``text/plain; charset=utf-8`` when its first bytes are
  UTF-8 text, else as an ``application/octet-stream`` attachment. Only the
  operator's separate raw origin (``MUSEHUB_RAW_URL``) serves it as itself; an
  SVG fetched by an ``<img>`` (``Sec-Fetch-Dest: image``, which a page cannot
  forge) is served as an image on the hub's origin too, since no script runs
  in an image.
"""

from __future__ import annotations

import codecs
import contextlib
import mimetypes
import re
from collections.abc import Iterator
from http import HTTPStatus
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header

from musehub_core.errors import RangeNotSatisfiable
from repos.storage.blobstream import open_download

# Types a browser runs, or renders as a document that could run script or pose as a hub page.
ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
        "text/css",
        "application/pdf",
        "application/x-shockwave-flash",
        "text/vnd.wap.wml",
    }
)
# How much of a file decides whether it is UTF-8 text (the start of the file, whatever range is asked for).
SNIFF_BYTES = 64 * 1024
# ASCII digits, at most 18 (any file's offset fits): longer is malformed, and int() is never asked for a huge one.
_SPEC = re.compile(r"([0-9]{0,18})-([0-9]{0,18})")


def is_active(content_type: str) -> bool:
    """Return True for a type a browser would run or render as a page (see ACTIVE_TYPES; any ``+xml``, multipart or message type)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ACTIVE_TYPES or kind.endswith("+xml") or kind.startswith(("multipart/", "message/"))


def is_utf8_text(head: bytes, *, complete: bool) -> bool:
    """Return True when *head* (the whole file when *complete*, else its start) is UTF-8 without NUL bytes.

    A character cut at the end of an incomplete head still counts as text.
    """
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def raw_type(guessed: str, head: bytes, *, complete: bool, raw_origin: bool, fetch_dest: str) -> tuple[str, bool]:
    """Return (Content-Type, as an attachment?) for a file whose guessed type is *guessed* and starts with *head*.

    Text types get ``; charset=utf-8`` when *head* is UTF-8. Active types
    (:func:`is_active`) keep their own type only on the raw origin, or for an
    SVG an ``<img>`` asked for (*fetch_dest* ``image``).
    """
    textual = guessed.startswith("text/") or is_active(guessed)
    utf8 = textual and is_utf8_text(head, complete=complete)
    if is_active(guessed) and not raw_origin and not (guessed == "image/svg+xml" and fetch_dest == "image"):
        return ("text/plain; charset=utf-8", False) if utf8 else ("application/octet-stream", True)
    if guessed.startswith("text/") and utf8:
        return f"{guessed}; charset=utf-8", False
    return guessed, False


def on_raw_origin(request) -> bool:
    """Return True when *request* came to the separate raw origin ``MUSEHUB_RAW_URL`` names (its host and port)."""
    raw_url = settings.MUSEHUB_RAW_URL
    return bool(raw_url) and request.get_host().lower() == urlsplit(raw_url).netloc.lower()


def requested_range(header: str, size: int) -> tuple[int, int] | None:
    """Return (first, last) byte of the one range *header* asks for, or None to send the whole file.

    None for no header, a unit other than ``bytes``, a malformed header, several
    ranges, or an empty file. ``last`` is clamped to the end. Raises
    RangeNotSatisfiable for a range starting at or past the end, or ``-0``.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or size <= 0:
        return None
    match = _SPEC.fullmatch(spec.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:  # the last n bytes
        if int(last) == 0:
            raise RangeNotSatisfiable(size)
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None  # invalid: ignored, the whole file goes out
    if int(first) >= size:
        raise RangeNotSatisfiable(size)
    return int(first), min(int(last), size - 1) if last else size - 1


def if_range_holds(header: str | None, etag: str) -> bool:
    """Return True when a Range may be honoured: no ``If-Range``, or one naming the current (strong) *etag*.

    A date never matches: these replies carry no Last-Modified.
    """
    return header is None or header.strip() == etag


def streamed(chunks: Iterator[bytes], *, status: int, content_type: str, length: int | None) -> StreamingHttpResponse:
    """Return a streaming reply of *chunks* with Content-Length when *length* is known."""
    response = StreamingHttpResponse(chunks, status=status, content_type=content_type)
    if length is not None:
        response["Content-Length"] = str(length)
    return response


def file_chunks(path: str, start: int, length: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """Yield *length* bytes of the file at *path* from *start*, *chunk* at a time (opened on the first read)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        while length > 0 and (data := handle.read(min(chunk, length))):
            length -= len(data)
            yield data


def if_none_match(header: str, etag: str) -> bool:
    """Return True when an ``If-None-Match`` *header* names *etag* (or ``*``): the answer is then 304."""
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def raw_file_response(request, object_id: str, path: str) -> HttpResponse:
    """Return the answer to a download of blob *object_id*, a repository file named *path*.

    304 when ``If-None-Match`` names it (the object id is the ETag), else the
    streamed 200 or 206; every answer carries the headers that keep untrusted
    content from running as part of the hub's site.
    """
    etag = f'"{object_id}"'
    if if_none_match(request.headers.get("If-None-Match", ""), etag):
        response = HttpResponse(status=HTTPStatus.NOT_MODIFIED)
    else:
        response = _download(request, object_id, path, etag)
    response["ETag"] = etag
    response["Cache-Control"] = "no-cache"
    # Repository content is untrusted: never let a browser run it as part of this site.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def _download(request, object_id: str, path: str, etag: str) -> HttpResponse:
    """Return the streamed 200 (or 206 for one satisfiable Range) of the blob; HEAD reads only what the type needs."""
    blob = open_download(object_id)
    wanted = None
    if blob.size is not None and "Range" in request.headers and if_range_holds(request.headers.get("If-Range"), etag):
        wanted = requested_range(request.headers["Range"], blob.size)  # RangeNotSatisfiable: 416
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    sniff = guessed.startswith("text/") or is_active(guessed)
    chunks = None
    if wanted is None and request.method != "HEAD":
        chunks = blob.chunks()  # the first chunk is read now: storage that is down is a JSON 503
        head = chunks.peek()[:SNIFF_BYTES]
    elif sniff and blob.size:
        with contextlib.closing(blob.range_chunks(0, min(blob.size, SNIFF_BYTES) - 1)) as start:
            head = b"".join(start)
    else:
        head = b""
    content_type, attachment = raw_type(
        guessed,
        head,
        complete=blob.size is not None and len(head) >= blob.size,
        raw_origin=on_raw_origin(request),
        fetch_dest=request.headers.get("Sec-Fetch-Dest", ""),
    )
    first, last = wanted if wanted is not None else (0, (blob.size or 0) - 1)
    length = None if blob.size is None else last - first + 1
    code = HTTPStatus.OK if wanted is None else HTTPStatus.PARTIAL_CONTENT
    if request.method == "HEAD":
        response = HttpResponse(status=code, content_type=content_type)
        if length is not None:
            response["Content-Length"] = str(length)
    else:
        if chunks is None:
            chunks = blob.range_chunks(first, last)
        response = streamed(chunks, status=code, content_type=content_type, length=length)
    if wanted is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    if blob.size is not None:
        response["Accept-Ranges"] = "bytes"
    if guessed == "image/svg+xml":
        patch_vary_headers(response, ["Sec-Fetch-Dest"])  # an <img> gets the image, a page the text
    response["Content-Disposition"] = content_disposition_header(attachment, path.rsplit("/", 1)[-1])
    return response
