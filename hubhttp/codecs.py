"""Body codecs for Django REST framework: the request parsers (msgpack, JSON) and the msgpack renderer.

Both parsers refuse a body that nests lists and maps more than
:data:`MAX_BODY_DEPTH` levels with a 400 (:class:`BodyTooDeep`), checked
without recursion right after decoding, so nothing recursive downstream
(serializers, reprs, ``json.dumps``) ever sees such a value; a body nested
deeper than the decoders themselves go (about 1,000 levels) gets the same 400
instead of a ``RecursionError``. (The MWP push view answers 422 instead: that
body is a bundle, so what nests too deep is pack content.)
"""

from __future__ import annotations

from typing import Any

import msgpack
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import BaseRenderer

from musehub_core.mpack import nests_deeper_than
from musehub_core.protocol import MSGPACK_TYPE

# Levels of lists and maps a request body may nest. An MWP push carries commits four levels down
# (body, bundle, commits, commit) and their optional fields may nest MAX_FIELD_DEPTH (64) more, so
# a deeper field in a bundle is still read and refused as pack content (422), naming its commit.
MAX_BODY_DEPTH = 100


class BodyTooDeep(ParseError):
    default_code = "too_deep"

    def __init__(self) -> None:
        super().__init__(f"The body nests lists and maps deeper than {MAX_BODY_DEPTH} levels.")


def _shallow(data: Any) -> Any:
    if nests_deeper_than(data, MAX_BODY_DEPTH):
        raise BodyTooDeep()
    return data


class MsgpackParser(BaseParser):
    media_type = MSGPACK_TYPE

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = stream.read() if stream is not None else b""
        try:
            decoded = msgpack.unpackb(
                data, raw=False, strict_map_key=False, max_bin_len=len(data), max_str_len=len(data)
            )
        except (msgpack.StackError, RecursionError) as exc:
            raise BodyTooDeep() from exc
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ParseError(f"The body is not valid msgpack: {str(exc).rstrip('.')}.") from exc
        return _shallow(decoded)


class JSONBodyParser(JSONParser):
    """DRF's JSON parser, with deep nesting a 400 (DRF's own lets the decoder's RecursionError through: a 500)."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            decoded = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise BodyTooDeep() from exc
        return _shallow(decoded)


class MsgpackRenderer(BaseRenderer):
    media_type = MSGPACK_TYPE
    format = "msgpack"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return msgpack.packb(data, use_bin_type=True, default=str)
