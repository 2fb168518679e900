"""Turn repository content into safe HTML: Markdown (sanitised), highlighted source with line numbers.

Repository content is untrusted. Markdown is rendered by markdown-it-py with
raw HTML allowed and then cleaned by nh3 (no script, no event handler, no
style, only http(s)/mailto links); source is highlighted by Pygments, which
escapes everything it emits.
"""

from __future__ import annotations

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


def markdown_html(text: str) -> str:
    """Return *text* rendered from Markdown and sanitised: safe to mark safe in a template."""
    return nh3.clean(
        _markdown.render(text),
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener noreferrer",
    )


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


def highlight_css() -> str:
    """Return the stylesheet for highlighted code (Pygments' default colours, scoped under ``.code``)."""
    return HtmlFormatter(style="default").get_style_defs(".code")
