"""Browsing a repository: its home page, directories and files at any ref.

Directories come from ``repos.readmodel.dir_index`` (a per-snapshot index, so a
page of a 25,000-file tree reads no manifest once the tree has been indexed)
and are paginated; a file page reads only that file's blob, and at most
``TEXT_MAX_BYTES`` of it is highlighted. Raw bytes are served by the REST
API's ``raw/`` route, with its sandbox headers.
"""

from __future__ import annotations

import functools
import posixpath
from urllib.parse import quote

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from hubhttp.errors import not_found
from hubhttp.views import absolute
from musehub_core.errors import NotFound
from repos import readmodel, selectors
from web import pianoroll
from web.pages import page, paginate, raw_url, repo_context, repo_page
from web.render import README_NAMES, highlighted_lines, is_markdown, markdown_html, resolve_relative

DIR_PAGE = 300  # directory entries per page
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".svg")
MIDI_SUFFIXES = (".mid", ".midi")
# Bigger MIDI files show as a download: mido reads about 1 MiB of events a second here.
MIDI_MAX_BYTES = 2 * 1024 * 1024
PATH_SAFE = "/!$&'()*+,;=:@~"  # what Django's reverse() leaves unquoted in a path


CRUMBS_HEAD, CRUMBS_TAIL = 2, 6  # a deeper path shows its first and last folders around an ellipsis


def crumbs(path: str) -> list[tuple[str, str | None]]:
    """Return [(name, path up to it)] for the segments of *path* a page shows; ("…", None) stands for the rest.

    Each crumb links to its whole prefix, so showing every one of a path 2,000
    folders deep would cost a page quadratic in the depth; a bounded number
    keeps it linear in the path's length.
    """
    parts = [p for p in path.split("/") if p]
    shown = range(len(parts))
    if len(parts) > CRUMBS_HEAD + CRUMBS_TAIL + 1:
        shown = [*range(CRUMBS_HEAD), -1, *range(len(parts) - CRUMBS_TAIL, len(parts))]
    return [("…", None) if i < 0 else (parts[i], "/".join(parts[: i + 1])) for i in shown]


def _listing(request: HttpRequest, repo, ref: str, index: readmodel.DirIndex, path: str):
    """Return (the page, [(entry, its URL)]) of directory *path*: one URL reversal per page, not per entry."""
    current = paginate(request, index.entries(path), DIR_PAGE)
    entries = current.object_list
    readmodel.fill_sizes(entries)
    kwargs = {"owner": repo.owner, "slug": repo.slug, "spec": ref}
    prefixes = {"dir": reverse("web-tree", kwargs=kwargs) + "/", "file": reverse("web-blob", kwargs=kwargs) + "/"}
    return current, [(entry, prefixes[entry.kind] + quote(entry.path, safe=PATH_SAFE)) for entry in entries]


def _relative_links(repo, ref: str, folder: str):
    """Return the URL rewriter of Markdown shown in *folder* at *ref*: links to file pages, images to raw bytes."""
    kwargs = {"owner": repo.owner, "slug": repo.slug, "spec": ref}
    blob_prefix = reverse("web-blob", kwargs=kwargs) + "/"
    raw = raw_url(repo, ref, "x")[:-1]

    def relative(tag: str, url: str) -> str | None:
        resolved = resolve_relative(folder, url)
        if resolved is None:
            return None
        path, fragment = resolved
        if tag == "img":
            return raw + quote(path, safe=PATH_SAFE)
        return (blob_prefix + quote(path, safe=PATH_SAFE) if path else reverse("web-tree", kwargs=kwargs)) + fragment

    return relative


def _readme(repo, ref: str, index: readmodel.DirIndex, path: str) -> dict | None:
    """Return the README of directory *path* rendered (Markdown, or plain text), or None."""
    names = {name.lower(): (name, oid) for name, oid in index.files.get(path, [])}
    for wanted in README_NAMES:
        if wanted in names:
            name, object_id = names[wanted]
            if (selectors.object_sizes([object_id]).get(object_id) or 0) > readmodel.TEXT_MAX_BYTES:
                return {"name": name, "too_large": True}
            text = readmodel.as_text(readmodel.read_blobs_by_id([object_id]).get(object_id, b""))
            if text is None:
                return None
            if is_markdown(name):
                return {"name": name, "html": markdown_html(text, relative=_relative_links(repo, ref, path))}
            return {"name": name, "text": text}
    return None


@csrf_exempt  # only GET is a page; any other method is the JSON 404 an unknown URL gets
@page
def repo_home(request: HttpRequest, owner: str, slug: str) -> HttpResponse:
    """``/{owner}/{slug}``: the default branch's top directory, its README, clone instructions and counts."""
    if request.method not in ("GET", "HEAD"):
        return not_found(request)
    ctx = repo_page(request, owner, slug)
    repo = ctx.repo
    heads = selectors.branch_heads(repo)
    ref = repo.default_branch if repo.default_branch in heads else next(iter(heads), None)
    clone_url = absolute(request, f"/{repo.owner}/{repo.slug}")
    context = repo_context(ctx, heads=list(heads), ref=ref, clone_url=clone_url, tab="code")
    if ref is not None:
        head = heads[ref]
        index = readmodel.dir_index(head)
        current, entries = _listing(request, repo, ref, index, "")
        context.update(
            head=selectors.commits_by_id([head]).get(head),
            page=current,
            entries=entries,
            readme=_readme(repo, ref, index, ""),
            commit_count=readmodel.CommitLog(head).count(),
            file_count=index.entry_count,
            path="",
        )
    return render(request, "web/repo_home.html", context)


@page
def tree(request: HttpRequest, owner: str, slug: str, spec: str) -> HttpResponse:
    """``tree/{ref}/{path}``: one directory at a ref, sub-directories first, paginated."""
    ctx = repo_page(request, owner, slug)
    ref, commit_id, path = selectors.split_ref_path(ctx.repo, spec)
    index = readmodel.dir_index(commit_id)
    if not index.is_dir(path):
        if index.file(path) is not None:
            return redirect("web-blob", owner=ctx.repo.owner, slug=ctx.repo.slug, spec=f"{ref}/{path}")
        raise NotFound(f"No directory {path!r} at {ref}.")
    current, entries = _listing(request, ctx.repo, ref, index, path)
    context = repo_context(
        ctx,
        heads=list(selectors.branch_heads(ctx.repo)),
        ref=ref,
        commit_id=commit_id,
        path=path,
        crumbs=crumbs(path),
        parent=posixpath.dirname(path),
        page=current,
        entries=entries,
        readme=_readme(ctx.repo, ref, index, path) if path else None,
        tab="code",
    )
    return render(request, "web/tree.html", context)


@page
def blob(request: HttpRequest, owner: str, slug: str, spec: str) -> HttpResponse:
    """``blob/{ref}/{path}``: a file: highlighted text, an image, a MIDI piano roll, or its size and a download."""
    ctx = repo_page(request, owner, slug)
    repo = ctx.repo
    ref, commit_id, path = selectors.split_ref_path(repo, spec)
    index = readmodel.dir_index(commit_id)
    object_id = index.file(path) if path else None
    if object_id is None:
        if index.is_dir(path):
            return redirect("web-tree", owner=repo.owner, slug=repo.slug, spec=f"{ref}/{path}".rstrip("/"))
        raise NotFound(f"No file {path!r} at {ref}.")
    size = selectors.object_sizes([object_id]).get(object_id, 0)
    lower = path.lower()
    context = repo_context(
        ctx,
        ref=ref,
        commit_id=commit_id,
        path=path,
        crumbs=crumbs(path),
        name=posixpath.basename(path),
        object_id=object_id,
        size=size,
        raw_url=raw_url(repo, ref, path),
        kind="binary",
        tab="code",
    )
    if lower.endswith(IMAGE_SUFFIXES):
        context["kind"] = "image"
    elif lower.endswith(MIDI_SUFFIXES) and size <= MIDI_MAX_BYTES:
        summary, svg = _piano_roll(object_id)
        context.update(kind="midi", midi=summary, svg=svg)
    elif size <= readmodel.TEXT_MAX_BYTES:
        text = readmodel.as_text(readmodel.read_blobs_by_id([object_id])[object_id])
        if text is not None:
            if is_markdown(path) and request.GET.get("plain") != "1":
                relative = _relative_links(repo, ref, posixpath.dirname(path))
                context.update(kind="markdown", html=markdown_html(text, relative=relative))
            else:
                context.update(kind="text", lines=highlighted_lines(path, text), markdown=is_markdown(path))
    else:
        context["kind"] = "too_large"
    return render(request, "web/blob.html", context)


@functools.lru_cache(maxsize=32)
def _piano_roll(object_id: str) -> tuple[pianoroll.MidiSummary, str]:
    """Read a MIDI blob and draw it once per process: an object id always names the same bytes."""
    summary = pianoroll.read_midi(readmodel.read_blobs_by_id([object_id])[object_id])
    return summary, pianoroll.piano_roll_svg(summary)
