"""Template filters of the web pages: short commit ids, sizes and first lines of messages."""

from __future__ import annotations

from django import template
from django.utils.html import avoid_wrapping, escape
from django.utils.safestring import SafeString, mark_safe

from musehub_core import formatting

register = template.Library()


@register.filter
def short_id(commit_id: str | None) -> str:
    """``sha256:0123abcd…`` → its first 12 hex digits (:func:`musehub_core.formatting.short_id`)."""
    return formatting.short_id(commit_id)


@register.filter
def human_bytes(count: int | None) -> str:
    """``1536`` → ``1.5 KiB``, kept on one line (:func:`musehub_core.formatting.human_bytes`; None reads as 0)."""
    return avoid_wrapping(formatting.human_bytes(count))


@register.filter
def bare_id(commit_id: str | None) -> str:
    """The id without its ``sha256:`` prefix (as used in URLs)."""
    return (commit_id or "").removeprefix("sha256:")


@register.filter
def first_line(message: str | None) -> str:
    return (message or "").strip().split("\n", 1)[0]


@register.filter
def rest_lines(message: str | None) -> str:
    parts = (message or "").strip().split("\n", 1)
    return parts[1].strip() if len(parts) > 1 else ""


@register.filter
def diff_class(line: str) -> str:
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return ""


@register.filter
def diff_rows(lines: list[str] | None) -> SafeString:
    """Return the table rows of a unified diff, each line escaped (built here: a template loop per line is slow)."""
    rows = [f'<tr class="{diff_class(line)}"><td><pre>{escape(line)}</pre></td></tr>' for line in lines or ()]
    return mark_safe("".join(rows))  # noqa: S308 - every line is escaped above
