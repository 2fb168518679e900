"""Template filters of the web pages: short commit ids and first lines of messages."""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def short_id(commit_id: str | None) -> str:
    """``sha256:0123abcd…`` → ``0123abcd`` (the first 10 hex digits)."""
    return (commit_id or "").removeprefix("sha256:")[:10]


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
