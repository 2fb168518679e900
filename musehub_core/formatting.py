"""Ids and sizes as people read them, the same on the web pages, in the admin, the commands and the client.

An id is shortened to its first :data:`SHORT_ID_DIGITS` hex digits (no ``sha256:``);
a byte count reads in binary units (``512 B``, ``1.5 KiB``, ``12.3 MiB``).
"""

from __future__ import annotations

from musehub_core.ids import hex_of

SHORT_ID_DIGITS = 12
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def short_id(content_id: str | None) -> str:
    """Return the first 12 hex digits of *content_id* (``sha256:`` or bare), or "" when there is none."""
    return hex_of(content_id)[:SHORT_ID_DIGITS] if content_id else ""


def human_bytes(count: float | None) -> str:
    """Return *count* bytes as a short human string: ``512 B``, ``1.5 KiB``, ``12.3 MiB`` (None reads as 0)."""
    value = float(count or 0)
    for unit in _UNITS[:-1]:
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} {_UNITS[-1]}"
