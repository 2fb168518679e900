"""Turn repository content into safe HTML: Markdown (sanitised), highlighted source with line numbers.

Repository content is untrusted. Markdown is rendered by markdown-it-py with
raw HTML allowed and then cleaned by nh3 (no script, no event handler, no
style, only http(s)/mailto links); source is highlighted by Pygments, which
escapes everything it emits.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").enable("strikethrough")

_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
    "code": {"class"},
}

MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdown")
README_NAMES = ("readme.md", "readme.markdown", "readme.txt", "readme")


def markdown_html(text: str, *, relative: Callable[[str, str], str | None] | None = None) -> str:
    """Return *text* rendered from Markdown and sanitised: safe to mark safe in a template.

    *relative*, when given, rewrites relative URLs: it is called with ``("a", url)``
    for a link and ``("img", url)`` for an image, and returns the URL to use
    (a README's ``docs/x.md`` becomes that file's page, ``cover.png`` its raw bytes).
    """

    def rewrite(tag: str, attribute: str, value: str) -> str | None:
        if relative is not None and (tag, attribute) in (("a", "href"), ("img", "src")) and is_relative(value):
            return relative(tag, value)
        return value

    return nh3.clean(
        _markdown.render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=rewrite,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )


def is_relative(url: str) -> bool:
    """Return True for a URL that names a path inside the repository (no scheme, not absolute, not a fragment)."""
    return bool(url) and not url.startswith(("/", "#", "?")) and ":" not in url.split("/", 1)[0]


def resolve_relative(folder: str, url: str) -> tuple[str, str] | None:
    """Return (repository path, ``#fragment`` or "") of relative *url* seen from *folder*; None when it leaves the tree."""
    target, hash_mark, fragment = url.partition("#")
    target = target.split("?", 1)[0]
    path = posixpath.normpath(posixpath.join(folder, target)) if target else folder
    if path == "." or not target:
        path = folder
    if path.startswith(".."):
        return None
    return path.strip("/"), (hash_mark + fragment)


def is_markdown(path: str) -> bool:
    return path.lower().endswith(MARKDOWN_SUFFIXES)


def highlighted_lines(path: str, text: str) -> list[str]:
    """Return one HTML fragment per line of *text*, highlighted for *path*'s language (escaped by Pygments)."""
    try:
        lexer = get_lexer_for_filename(path, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    html = highlight(text, lexer, HtmlFormatter(nowrap=True))
    wanted = text.count("\n") + (0 if text.endswith("\n") else 1)  # Pygments may add a final newline
    return html.split("\n")[:wanted]
