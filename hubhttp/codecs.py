"""msgpack for Django REST framework: a parser and a renderer (``application/x-msgpack``)."""

from __future__ import annotations

from typing import Any

import msgpack
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

MSGPACK = "application/x-msgpack"


class MsgpackParser(BaseParser):
    media_type = MSGPACK

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        data = stream.read() if stream is not None else b""
        try:
            return msgpack.unpackb(data, raw=False, strict_map_key=False, max_bin_len=len(data), max_str_len=len(data))
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise ParseError(f"The body is not valid msgpack: {str(exc).rstrip('.')}.") from exc


class MsgpackRenderer(BaseRenderer):
    media_type = MSGPACK
    format = "msgpack"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return msgpack.packb(data, use_bin_type=True, default=str)
