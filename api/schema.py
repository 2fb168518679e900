"""The OpenAPI document at ``/api/schema/`` and its readable page at ``/api/docs/``.

What drf-spectacular cannot know by itself lives here: the Bearer token scheme
(:class:`BearerTokenScheme`), the request and reply shapes of the MWP views
(which take plain msgpack maps), the groups operations are shown in
(:func:`tag_and_document_errors`, from each path), the error replies every
operation may give, and a docs page that loads nothing from another host
(:class:`OfflineRedocView`).
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiViewExtension
from drf_spectacular.utils import extend_schema, extend_schema_view, inline_serializer
from drf_spectacular.views import SpectacularRedocView
from rest_framework import serializers

TAGS = [
    {
        "name": "Account",
        "description": "Who you are. Create a token with `python manage.py musehub_token create USER` and send "
        "`Authorization: Bearer <token>`.",
    },
    {
        "name": "Repositories",
        "description": "List, create, change, rename, transfer and delete repositories, and manage who may "
        "read, write or administer them.",
    },
    {
        "name": "History and files",
        "description": "Branches, the commit log, one commit's changes, directory listings, raw files and "
        "comparisons between two refs.",
    },
    {
        "name": "Merge proposals",
        "description": "Ask to merge one branch into another, review, merge (merge, squash or fast-forward), "
        "close and reopen.",
    },
    {"name": "Releases and tags", "description": "Named releases of commits, and tags on commits."},
    {"name": "Muse domains", "description": "Domain plugins published with `muse domains publish`."},
    {
        "name": "Wire: native mpack protocol",
        "description": "What the MuseHub client speaks: branch heads, which objects are missing, one mpack "
        "uploaded per push, one mpack per fetch (docs/wire.md §3). Bodies are msgpack or JSON.",
    },
    {
        "name": "Wire: MWP (muse CLI)",
        "description": "What the published `muse` CLI speaks (docs/wire.md §4): msgpack maps, bare-hex ids.",
    },
]

_TAG_BY_SEGMENT = {
    "branches": "History and files",
    "commits": "History and files",
    "tree": "History and files",
    "raw": "History and files",
    "compare": "History and files",
    "proposals": "Merge proposals",
    "releases": "Releases and tags",
    "tags": "Releases and tags",
    "collaborators": "Repositories",
    "rename": "Repositories",
}
_NATIVE_WIRE = {"refs", "filter-objects", "mpack"}

ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error: a machine-readable code and a sentence saying what to do. Some codes add "
    "fields (`conflicts` for merge_conflict, `moved_to` for repo_moved).",
    # The body hubhttp.errors.error_body builds (spelled with dict() so only hubhttp spells error bodies).
    "properties": dict(
        error={"type": "string", "example": "repo_not_found"},
        detail={"type": "string", "example": "Repository alice/songs not found."},
    ),
    "required": ["error", "detail"],
}

_ERRORS = {
    "400": "The request is malformed: `bad_request` names the field and the problem.",
    "401": "No token, or an unknown, revoked or expired one (`unauthenticated`, with `WWW-Authenticate: Bearer`).",
    "403": "Your role on the repository is not enough (`forbidden` names the role you have and the one needed).",
    "404": "No such repository, or a private one you may not read (`repo_not_found`); `repo_moved` with "
    "`moved_to` when it was renamed or transferred; `reserved_owner` for a name the hub's pages use; "
    "`ref_not_found` / `not_found` for what is inside.",
    "409": "The request conflicts with the current state (a name taken, a branch moved, a non-fast-forward).",
    "411": "Send the body with a Content-Length (chunked bodies are not accepted).",
    "413": "Over a size limit of the hub (a pack, a request body, or a reply the muse CLI would refuse).",
    "422": "The request is well formed but cannot apply (e.g. `unknown_branch`, `malformed_pack`).",
    "429": "Too many failed token authentications from your address (`throttled`): every token request from it "
    "is refused, a right token too, until `Retry-After` seconds have passed.",
    "503": "Storage or the database is unavailable: retry after `Retry-After` seconds.",
}


# Errors particular to some operations, by (path, method), besides those every operation of its kind may give.
_MORE_ERRORS = {
    ("/api/v1/repos", "post"): ["409"],
    ("/api/v1/repos/{owner}/{slug}", "patch"): ["422"],
    ("/api/v1/repos/{owner}/{slug}/rename", "post"): ["409"],
    ("/api/v1/repos/{owner}/{slug}/branches/{name}", "delete"): ["409"],
    ("/api/v1/repos/{owner}/{slug}/proposals", "post"): ["422"],
    ("/api/v1/repos/{owner}/{slug}/proposals/{number}/merge", "post"): ["409"],
    ("/api/v1/domains", "post"): ["409"],
    ("/{owner}/{slug}/mpack/upload", "post"): ["413"],
    ("/{owner}/{slug}/mpack/push", "post"): ["409", "413", "422"],
    ("/{owner}/{slug}/mpack/fetch", "post"): ["413"],
    ("/{owner}/{slug}/push", "post"): ["409", "411", "413", "422"],
    ("/{owner}/{slug}/push/objects", "post"): ["411", "413", "422"],
    ("/{owner}/{slug}/fetch", "post"): ["413"],
    ("/{owner}/{slug}/releases", "post"): ["409", "422"],
    ("/{owner}/{slug}/tags", "post"): ["422"],
}


def tag_of(path: str) -> str:
    """Return the group an operation at *path* is shown in."""
    if path.startswith("/api/v1/user"):
        return "Account"
    if path.startswith("/api/v1/domains"):
        return "Muse domains"
    if path.startswith("/api/v1/repos"):
        parts = path.removeprefix("/api/v1/repos").strip("/").split("/")
        return _TAG_BY_SEGMENT.get(parts[2], "Repositories") if len(parts) > 2 else "Repositories"
    suffix = path.strip("/").split("/")[2:3]
    return "Wire: native mpack protocol" if suffix and suffix[0] in _NATIVE_WIRE else "Wire: MWP (muse CLI)"


def keep_public_endpoints(endpoints, **kwargs):
    """PREPROCESSING_HOOK: leave out the schema itself and signed storage URLs (a URL the hub hands out, not an API)."""
    return [e for e in endpoints if not e[0].startswith(("/api/schema", "/_storage/"))]


def tag_and_document_errors(result, generator, request, public):
    """POSTPROCESSING_HOOK: group operations by purpose and document the error replies each may give."""
    result["tags"] = TAGS
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            operation["tags"] = [tag_of(path)]
            codes = ["401", "429", "503"]
            if "{owner}" in path or "{author}" in path:
                codes.append("404")
            if method in ("post", "put", "patch", "delete"):
                codes += ["400", "403"]
            codes += _MORE_ERRORS.get((path, method), [])
            responses = operation.setdefault("responses", {})
            for code in sorted(codes):
                responses.setdefault(
                    code,
                    {
                        "description": _ERRORS[code],
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    },
                )
    return result


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``hubhttp.authentication.BearerTokenAuthentication`` as the OpenAPI ``http bearer`` scheme."""

    target_class = "hubhttp.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A hub token: `python manage.py musehub_token create USER` prints one "
            "(only its hash is stored). Public repositories need none.",
        }


# --- the MWP views take and give plain msgpack maps: their shapes, from docs/wire.md §4 ----------------


def _shape(name: str, **fields) -> serializers.Serializer:
    return inline_serializer(name=name, fields=fields)


_ids = serializers.ListField(child=serializers.CharField())
_want_have = {"want": _ids, "have": _ids}
_MWP = {
    "wire.views.PresignView": {
        "request": _shape("MwpPresignRequest", object_ids=_ids, direction=serializers.CharField(default="put")),
        "responses": _shape(
            "MwpPresignResponse",
            presigned=serializers.DictField(child=serializers.URLField(), help_text="{object id: PUT URL}"),
            inline=_ids,
        ),
        "description": "Presigned PUT URLs for large objects; the objects listed in `inline` go through "
        "push/objects instead.",
    },
    "wire.views.PushObjectsView": {
        "request": _shape(
            "MwpPushObjectsRequest",
            objects=serializers.ListField(child=serializers.DictField(), help_text="[{object_id, content}]"),
        ),
        "responses": _shape(
            "MwpPushObjectsResponse", stored=serializers.IntegerField(), skipped=serializers.IntegerField()
        ),
        "description": "Stores a batch of objects as one mpack; objects the hub holds are skipped.",
    },
    "wire.views.MwpPushView": {
        "request": _shape(
            "MwpPushRequest",
            bundle=serializers.DictField(help_text="{commits, snapshots, objects?}"),
            branch=serializers.CharField(),
            force=serializers.BooleanField(default=False),
        ),
        "responses": _shape(
            "MwpPushResponse",
            ok=serializers.BooleanField(),
            message=serializers.CharField(),
            branch_heads=serializers.DictField(child=serializers.CharField()),
        ),
        "description": "Stores a bundle of commits and snapshots and moves the branch (fast-forward unless "
        "`force`). The first push under your own name creates the repository.",
    },
    "wire.views.MwpFetchView": {
        "request": _shape("MwpFetchRequest", **_want_have),
        "responses": _shape(
            "MwpFetchResponse",
            commits=serializers.ListField(child=serializers.DictField()),
            snapshots=serializers.ListField(child=serializers.DictField()),
            objects=serializers.ListField(child=serializers.DictField()),
            branch_heads=serializers.DictField(child=serializers.CharField()),
        ),
        "description": "The commits reachable from `want` and not from `have`, their snapshots and objects "
        "(413 past the muse CLI's 64 MiB reply cap).",
    },
    "wire.views.NegotiateView": {
        "request": _shape("MwpNegotiateRequest", **_want_have),
        "responses": _shape(
            "MwpNegotiateResponse",
            ack=_ids,
            common_base=serializers.CharField(allow_null=True),
            ready=serializers.BooleanField(),
        ),
        "description": "Which of `have` the hub knows, and the common base of `want` and `have`.",
    },
}


def _mwp_extension(target: str, schema: dict) -> type[OpenApiViewExtension]:
    class MwpSchema(OpenApiViewExtension):
        target_class = target

        def view_replacement(self):
            class Documented(self.target_class):
                pass

            Documented.__name__ = self.target_class.__name__
            return extend_schema_view(post=extend_schema(**schema))(Documented)

    MwpSchema.__name__ = f"{target.rsplit('.', 1)[-1]}Schema"
    return MwpSchema


MWP_EXTENSIONS = [_mwp_extension(target, schema) for target, schema in _MWP.items()]


# --- the docs page --------------------------------------------------------------------------------

# Redoc's bundle always draws a "by Redocly" logo from cdn.redoc.ly; this policy makes the browser drop
# that request, so the page works offline and tells no other host who reads it.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'"
)


class OfflineRedocView(SpectacularRedocView):
    """Redoc served by the hub (drf-spectacular-sidecar), with no web font and no request to another host."""

    template_name = "api/redoc.html"

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = DOCS_CSP
        return response
