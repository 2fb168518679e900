"""HTTP views of the wire protocols: native mpack (docs/wire.md §3), MWP (§4) and signed storage URLs.

Views only coordinate: parse and validate the body, resolve the repository
once and check access (``repos.access``, or ``repos.services.repos`` for a
push, which may create it), hand that Repo to one service, serialize. No view
queries the database itself (``tests/test_layers.py`` keeps it so). Errors are
domain exceptions, turned into responses by ``hubhttp.errors``; error bodies are
always JSON.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from django.core.files import File
from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from hubhttp.authentication import BearerTokenAuthentication
from hubhttp.codecs import MAX_BODY_DEPTH, BodyTooDeep, JSONBodyParser, MsgpackParser, MsgpackRenderer
from hubhttp.downloads import file_chunks, requested_range, streamed
from hubhttp.views import absolute, validated
from musehub_core.errors import BadRequest, MalformedPack, NotFound, PayloadTooLarge
from musehub_core.ids import PREFIX, is_hex, is_id, to_wire_hex
from musehub_core.mpack import MAX_FIELD_DEPTH
from musehub_core.protocol import (
    CAPABILITIES,
    JSON_TYPE,
    NATIVE_PROTOCOL,
    PACK_COUNT_HEADERS,
    PACK_STREAM,
    PACK_TYPE,
    PROTOCOL_HEADER,
    PUSH_INLINE,
)
from repos.access import repo_for
from repos.selectors import branch_heads
from repos.services.push import missing_objects
from repos.services.repos import creatable_or_repo, repo_for_push
from repos.services.uploads import expected_upload
from repos.storage.backend import (
    FileSystemMPackStore,
    get_backend,
    verify_signed_url,
)
from wire import mwp
from wire import serializers as s
from wire.fetch import stream_fetch_mpack, wire_fetch_mpack
from wire.push import create_mpack_upload, inline_push_allowed, wire_push_unpack_mpack

_CHUNK = 1024 * 1024


def is_native(request) -> bool:
    """Return True when the caller speaks the native protocol (ids with their ``sha256:`` prefix)."""
    return request.headers.get(PROTOCOL_HEADER, "").lower().startswith(NATIVE_PROTOCOL)


def listed_capabilities() -> list[str]:
    """Return the capabilities ``refs`` lists: every one, ``push-inline`` only while this hub's limits take it."""
    return [name for name in CAPABILITIES if name != PUSH_INLINE or inline_push_allowed()]


class WireView(APIView):
    """Base of the repository wire endpoints: Bearer tokens, msgpack first, JSON error bodies."""

    authentication_classes = [BearerTokenAuthentication]
    parser_classes = [MsgpackParser, JSONBodyParser]
    renderer_classes = [MsgpackRenderer, JSONRenderer]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and isinstance(response, Response):
            # Clients print error bodies as text (the muse CLI shows the first 400 characters).
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSON_TYPE
        return response


class RefsView(WireView):
    @extend_schema(responses=s.RefsResponse, summary="Branch heads of a repository")
    def get(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        heads = branch_heads(repo)
        if not is_native(request):
            heads = {name: to_wire_hex(head) for name, head in heads.items()}
        return Response(
            {
                "repo_id": repo.repo_id,
                "domain": repo.domain,
                "default_branch": repo.default_branch,
                "branch_heads": heads,
                "capabilities": listed_capabilities(),
            }
        )


class FilterObjectsView(WireView):
    @extend_schema(
        request=s.FilterObjectsRequest,
        responses=s.FilterObjectsResponse,
        summary="Which of these objects the repository lacks",
    )
    def post(self, request, owner: str, slug: str):
        ids = validated(s.FilterObjectsRequest, request.data)["object_ids"]
        if not all(is_id(i) or is_hex(i) for i in ids):
            raise BadRequest("object_ids must hold object ids (64 hex digits, optionally 'sha256:'-prefixed).")
        # A repository a push by this caller would create holds nothing yet (None): every id is missing.
        repo = creatable_or_repo(acting_user=request.user, owner=owner, slug=slug)
        return Response({"missing": missing_objects(repo, ids)})


class UploadView(WireView):
    @extend_schema(request=s.UploadRequest, responses=s.UploadResponse, summary="Get a URL to upload an mpack to")
    def post(self, request, owner: str, slug: str):
        body = validated(s.UploadRequest, request.data)
        repo = repo_for_push(acting_user=request.user, owner=owner, slug=slug)
        slot = create_mpack_upload(repo, mpack_key=body["mpack_key"], size=body["size"], user=request.user)
        if "upload_url" in slot:
            slot["upload_url"] = absolute(request, slot["upload_url"])
        return Response(slot)


class PushView(WireView):
    @extend_schema(
        request=s.PushRequest, responses=s.PushResponse, summary="Unpack an uploaded (or inline) mpack, move a branch"
    )
    def post(self, request, owner: str, slug: str):
        body = validated(s.PushRequest, request.data)
        repo = repo_for_push(acting_user=request.user, owner=owner, slug=slug)
        result = wire_push_unpack_mpack(
            repo,
            body["mpack_key"],
            request.user,
            branch=body["branch"],
            head_commit_id=body["head_commit_id"],
            commits_count=body["commits_count"],
            blobs_count=body["blobs_count"],
            force=body["force"],
            mpack=body.get("mpack"),
        )
        return Response(result)


class FetchView(WireView):
    @extend_schema(
        request=s.FetchRequest,
        responses=s.FetchResponse,
        summary="Build an mpack of what the client lacks",
        description="With the `pack-stream` capability the reply is the pack itself (application/x-mpack), "
        "blobs as stored, with the counts in MuseHub-Commit-Count, MuseHub-Snapshot-Count and MuseHub-Blob-Count.",
    )
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        body = validated(s.FetchRequest, request.data)
        if PACK_STREAM in body["capabilities"]:
            stream = stream_fetch_mpack(repo, want=body["want"], have=body["have"], capabilities=body["capabilities"])
            response = StreamingHttpResponse(stream.chunks, content_type=PACK_TYPE)
            for name, value in stream.counts.items():
                response[PACK_COUNT_HEADERS[name]] = str(value)
            return response
        result = wire_fetch_mpack(repo, want=body["want"], have=body["have"], capabilities=body["capabilities"])
        result["mpack_url"] = absolute(request, result["mpack_url"])
        return Response(result)


# --- MWP (the muse CLI, docs/wire.md §4): msgpack in and out, bare-hex ids ----------------------------


class MwpView(WireView):
    """MWP endpoints: the body is a msgpack map; replies are msgpack."""

    def body(self, request) -> dict:
        if not isinstance(request.data, dict):
            raise BadRequest("The body must be a msgpack map.")
        return request.data


class PresignView(MwpView):
    @extend_schema(summary="MWP: presigned PUT URLs for large objects")
    def post(self, request, owner: str, slug: str):
        ids = mwp.parse_presign(self.body(request))
        repo = repo_for_push(acting_user=request.user, owner=owner, slug=slug)
        result = mwp.mwp_presign(repo, ids)
        result["presigned"] = {oid: absolute(request, url) for oid, url in result["presigned"].items()}
        return Response(result)


class PushObjectsView(MwpView):
    @extend_schema(summary="MWP: store a batch of objects")
    def post(self, request, owner: str, slug: str):
        contents = mwp.parse_push_objects(self.body(request))
        repo = repo_for_push(acting_user=request.user, owner=owner, slug=slug)
        return Response(mwp.mwp_push_objects(repo, contents))


class MwpPushView(MwpView):
    @extend_schema(summary="MWP: store a bundle of commits and snapshots, move a branch")
    def post(self, request, owner: str, slug: str):
        try:
            body = self.body(request)
        except BodyTooDeep as exc:
            # What nests that deep in a push is its bundle, i.e. pack content: 422, as for a native pack.
            raise MalformedPack(
                f"The push bundle nests lists and maps deeper than {MAX_BODY_DEPTH} levels; "
                f"a commit's optional fields may nest at most {MAX_FIELD_DEPTH} levels."
            ) from exc
        push = mwp.parse_push(body)
        repo = repo_for_push(acting_user=request.user, owner=owner, slug=slug)
        return Response(mwp.mwp_push(repo, push, pusher=request.user))


class MwpFetchView(MwpView):
    @extend_schema(summary="MWP: commits, snapshots and objects the client lacks")
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        body = self.body(request)
        # Assembled whole before the first byte (wire.mwp.mwp_fetch): a storage failure is a JSON 503, never a cut reply.
        reply = mwp.mwp_fetch(repo, want=body.get("want"), have=body.get("have", []))
        response = StreamingHttpResponse(reply, content_type=MsgpackRenderer.media_type)
        response["Content-Length"] = str(reply.size)
        return response


class NegotiateView(MwpView):
    @extend_schema(summary="MWP: find the commits client and hub have in common")
    def post(self, request, owner: str, slug: str):
        repo = repo_for(request.user, owner, slug)
        body = self.body(request)
        return Response(mwp.mwp_negotiate(repo, want=body.get("want", []), have=body.get("have", [])))


# --- signed storage URLs (filesystem backend) ----------------------------------------------------


class SignedStorageView(APIView):
    """The filesystem backend's signed URLs: GET (honouring Range) downloads, PUT uploads.

    The signature names one storage key, one method and an expiry, so the URL
    needs no other credentials (and any token sent along is ignored); uploads are
    checked against the slot's size and key. Errors take the usual JSON shape.
    """

    authentication_classes: list = []
    renderer_classes = [JSONRenderer]

    @staticmethod
    def _store() -> FileSystemMPackStore:
        backend = get_backend()
        if not isinstance(backend, FileSystemMPackStore):
            raise NotFound("This hub stores packs in S3; use the presigned URL it gave you.")
        return backend

    def get(self, request, token: str):
        name = verify_signed_url(token, "GET")
        store = self._store()
        if not store.storage.exists(name):
            raise NotFound("No such object.")
        path = store.path_for(name)
        size = os.path.getsize(path)
        wanted = requested_range(request.headers.get("Range", ""), size)  # RangeNotSatisfiable: 416
        first, last = wanted if wanted is not None else (0, size - 1)
        # Streamed a chunk at a time, a range as much as a whole pack.
        response = streamed(
            file_chunks(path, first, last - first + 1, _CHUNK),
            status=200 if wanted is None else 206,
            content_type="application/octet-stream",
            length=last - first + 1,
        )
        if wanted is not None:
            response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Accept-Ranges"] = "bytes"
        return response

    def put(self, request, token: str):
        name = verify_signed_url(token, "PUT")
        store = self._store()
        expected = expected_upload(name)  # NotFound for a slot that no longer exists
        with tempfile.SpooledTemporaryFile(max_size=16 * _CHUNK) as spool:
            digest, size = self._receive(request, spool, expected.max_size)
            if digest != expected.content_id or (expected.exact_size is not None and size != expected.exact_size):
                raise BadRequest(
                    f"The uploaded bytes ({size} bytes, {digest}) do not match what this URL expects "
                    f"({expected.content_id})."
                )
            spool.seek(0)
            store.storage.save(name, File(spool))
        return HttpResponse(status=200)

    @staticmethod
    def _receive(request, spool, limit: int) -> tuple[str, int]:
        hasher = hashlib.sha256()
        size = 0
        while chunk := request.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The upload is larger than the {limit} bytes announced for it.")
            hasher.update(chunk)
            spool.write(chunk)
        return PREFIX + hasher.hexdigest(), size
