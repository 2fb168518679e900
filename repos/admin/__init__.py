"""The Django admin: inspect every model, and edit only what cannot break the storage rule.

Content rows (commits, snapshots, objects, the graph, the ref tables, mpacks
and their index) are written by the hub's services alone: here they can be
viewed, never added, changed or deleted, so content ids and storage URIs stay
what their content says. Repositories, collaborators, tokens, branches and
proposals can be edited where that is safe (names, descriptions, roles,
revocation, proposal titles); ids and heads stay read-only.

The inspection pages: a repository shows its clone URL, size, commit count,
last push and recent commits, and lists its branches, proposals and
collaborators; a snapshot shows its manifest as a table of paths linked to
objects, a page at a time or one folder at a time; an object shows where its
bytes live (mpack, offset, length, encoding, cached or not) and previews text;
an mpack lists its index entries beside their paths and has a "Verify
integrity" action.

Built for a hub of millions of rows (issue 16): the content lists are newest
first (an index on the time column), filterable by repository (driven from the
repository's ref rows), never count a big table (``EstimatedCountPaginator``),
offer only filters whose choices are known (no ``DISTINCT`` over a big table),
run no query per row (repository columns are subqueries of the page's one
query), and search ids through the primary-key index (a full id exactly, a
prefix as a range). Text search (commit messages and authors, object paths)
uses the trigram indexes of migration 0009 on PostgreSQL, and elsewhere needs
a repository filter unless the table is small.

One module per family of models, each registering its own admins when imported (``admin.autodiscover()``
imports this package, which imports them all): :mod:`~repos.admin.repositories` (repositories and
collaborators), :mod:`~repos.admin.history` (branches, commits, the commit graph, snapshots),
:mod:`~repos.admin.storage` (objects, mpacks, the index, upload slots, staged blobs),
:mod:`~repos.admin.refs` (which repository sees what), :mod:`~repos.admin.proposals`,
:mod:`~repos.admin.releases` (releases and tags), :mod:`~repos.admin.domains`, :mod:`~repos.admin.tokens`;
:mod:`~repos.admin.shared` holds the helpers and base classes they share. The limits below are read from
this package when a page renders, so setting one here (a test, an operator) changes every page.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib import admin

# Importing a module registers its admins; the modules read the limits below from this package at each page.
from repos.admin import domains, history, proposals, refs, releases, repositories, storage, tokens
from repos.admin.shared import ReadOnlyAdmin, id_prefix_range, short, size

MANIFEST_ROWS = 500  # paths per page of a snapshot's manifest
INDEX_ROWS = 500
REF_ROWS = 50
RECENT_COMMITS = 10
PREVIEW_BYTES = 4096
PREVIEW_READ_MAX = 1024 * 1024  # larger blobs are not read from storage just to preview them
COUNT_CAP = 10_000  # lists count at most this many rows; past it the planner's estimate stands in
SMALL_TABLE = 100_000  # text search without an index is allowed on tables up to about this many rows

admin.site.site_header = "MuseHub administration"
admin.site.site_title = "MuseHub admin"
admin.site.index_title = "Repositories, history and storage"
admin.site.enable_nav_sidebar = False  # the lists need the width (their columns fit a 1400 px screen)

__all__ = [  # the modules (imported for their registrations) and the helpers tests and docs name here
    "ReadOnlyAdmin",
    "domains",
    "history",
    "id_prefix_range",
    "proposals",
    "refs",
    "releases",
    "repositories",
    "short",
    "size",
    "storage",
    "tokens",
]

# Models added to the app later still show up, read-only, until they get an admin of their own.
for _model in apps.get_app_config("repos").get_models():
    if not admin.site.is_registered(_model):
        admin.site.register(_model, ReadOnlyAdmin)
