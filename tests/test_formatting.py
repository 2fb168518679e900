"""Ids and sizes read the same everywhere: one short id and one byte style, in musehub_core.formatting."""

from __future__ import annotations

from musehub_core.formatting import human_bytes, short_id
from musehub_core.ids import blob_id, hex_of


def test_human_bytes_reads_like_a_person_would_write_it():
    assert human_bytes(0) == human_bytes(None) == "0 B"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert human_bytes(2 * 1024**5) == "2048.0 TiB"


def test_a_short_id_is_the_first_twelve_hex_digits_with_or_without_the_prefix():
    content_id = blob_id(b"notes")
    assert short_id(content_id) == short_id(hex_of(content_id)) == hex_of(content_id)[:12]
    assert short_id(None) == short_id("") == ""
