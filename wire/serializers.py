"""Request and response shapes of the wire protocols (validation, and the OpenAPI schema)."""

from __future__ import annotations

from django.core.validators import RegexValidator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class ContentIdField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 71)
        super().__init__(**kwargs)
        self.validators.append(
            RegexValidator(r"^sha256:[0-9a-f]{64}$", "Must be 'sha256:' followed by 64 lowercase hex digits.")
        )


class IdListField(serializers.ListField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 10_000)
        super().__init__(child=ContentIdField(), **kwargs)


@extend_schema_field(OpenApiTypes.BINARY)
class PackBytesField(serializers.Field):
    """Binary bytes as msgpack carries them (a JSON body cannot: it must upload instead)."""

    default_error_messages = {"binary": "Must be binary (a msgpack bin); send the request as msgpack."}

    def to_internal_value(self, data):
        if not isinstance(data, bytes):
            self.fail("binary")
        return data

    def to_representation(self, value):
        return value


class UploadRequest(serializers.Serializer):
    mpack_key = ContentIdField()
    size = serializers.IntegerField(min_value=1)


class UploadResponse(serializers.Serializer):
    mpack_key = serializers.CharField()
    exists = serializers.BooleanField(required=False)
    upload_url = serializers.CharField(required=False)
    method = serializers.CharField(required=False)
    expires_in = serializers.IntegerField(required=False)


class PushRequest(serializers.Serializer):
    mpack_key = ContentIdField()
    branch = serializers.CharField(max_length=255, default="main")
    head_commit_id = serializers.CharField(allow_blank=True, default="", max_length=71)
    force = serializers.BooleanField(default=False)
    commits_count = serializers.IntegerField(min_value=0, max_value=10_000_000)
    blobs_count = serializers.IntegerField(min_value=0, max_value=100_000_000)
    mpack = PackBytesField(required=False, help_text="The pack itself (msgpack bin, capability push-inline).")


class PushResponse(serializers.Serializer):
    ok = serializers.BooleanField()
    branch = serializers.CharField()
    head_commit_id = serializers.CharField()
    branch_heads = serializers.DictField(child=serializers.CharField())
    commits_added = serializers.IntegerField()
    blobs_added = serializers.IntegerField()


class FetchRequest(serializers.Serializer):
    want = IdListField(min_length=1)
    have = IdListField(default=list, max_length=1_000_000)
    capabilities = serializers.ListField(
        child=serializers.CharField(max_length=64),
        default=list,
        max_length=32,
        help_text="Optional wire features the client understands, e.g. 'snapshot-delta' (docs/wire.md 2.1).",
    )


class FetchResponse(serializers.Serializer):
    mpack_id = serializers.CharField()
    mpack_url = serializers.CharField()
    commit_count = serializers.IntegerField()
    snapshot_count = serializers.IntegerField()
    blob_count = serializers.IntegerField()
    size = serializers.IntegerField()


class RefsResponse(serializers.Serializer):
    repo_id = serializers.CharField()
    domain = serializers.CharField()
    default_branch = serializers.CharField()
    branch_heads = serializers.DictField(child=serializers.CharField())
    capabilities = serializers.ListField(child=serializers.CharField())


class FilterObjectsRequest(serializers.Serializer):
    object_ids = serializers.ListField(child=serializers.CharField(max_length=71), max_length=1_000_000)


class FilterObjectsResponse(serializers.Serializer):
    missing = serializers.ListField(child=serializers.CharField())
