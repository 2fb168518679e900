"""The layout stays true: import contracts (also run by make lint), faces that do not query the database,
one owner of the stored manifest, of storage keys and of error bodies."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Every package of the project (a folder with an __init__.py), found rather than listed, so none is skipped.
APP_PACKAGES = tuple(sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "tests"))


def source_files(packages=APP_PACKAGES):
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_only_the_manifest_module_touches_the_stored_manifest():
    owners = {REPO / "repos" / "manifests.py", REPO / "repos" / "models.py"}
    touching = [
        str(p.relative_to(REPO)) for p in source_files() if p not in owners and "manifest_blob" in p.read_text()
    ]
    assert touching == [], f"read and write manifests through repos.manifests, not in {touching}"


def test_only_the_layout_module_spells_storage_keys_and_uris():
    spelled = re.compile(r"""["'](mpack://|objects://|incoming/|mpacks/)""")
    owner = REPO / "repos" / "storage" / "layout.py"
    found = [str(p.relative_to(REPO)) for p in source_files() if p != owner and spelled.search(p.read_text())]
    assert found == [], f"storage keys and URIs are made in repos.storage.layout, not in {found}"


TEMPLATE_RENDERERS = frozenset({"render", "render_to_string", "TemplateResponse", "SimpleTemplateResponse"})


def error_bodies(tree: ast.AST) -> list[int]:
    """Return the lines of ``{"error": ...}`` dict literals, but for a template's context (an HTML page, such as
    web's error page)."""
    contexts = {
        id(arg)
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", getattr(call.func, "attr", None)) in TEMPLATE_RENDERERS
        for arg in [*call.args, *(k.value for k in call.keywords)]
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        and id(node) not in contexts
        and any(isinstance(k, ast.Constant) and k.value == "error" for k in node.keys)
    ]


def test_views_raise_domain_errors_and_only_hubhttp_builds_error_bodies():
    builders = [
        f"{p.relative_to(REPO)}:{line}"
        for p in source_files()
        if p.parts[-2] != "hubhttp"
        for line in error_bodies(ast.parse(p.read_text()))
    ]
    assert builders == [] or all(b.startswith(("musehub_client", "bench")) for b in builders), builders


# --- faces do not query the database ----------------------------------------------------------------
#
# A face (a package serving one kind of client) parses the request, resolves the repository once, hands
# that Repo to the domain (repos: access, services, selectors) and shapes the reply. The database is the
# domain's. A face may hold the model instances a service returned and name model types and choices
# (annotations, Role.WRITE, ReleaseChannel.choices, a ModelSerializer's Meta.model), but it never queries.
# The rule is checked on each module's syntax tree, as what a query has to be written with:
# - a manager: `.objects`, `._default_manager`, `._base_manager` (where every ORM query starts);
# - a call of a method only QuerySets and managers have (ORM_ONLY_METHODS), which also catches a related
#   manager (`repo.branches.all()`) and refining a queryset a selector returned;
# - `django.db` (transactions, connections, expressions such as Sum or Q) or the domain's SQL helpers
#   (`repos.bulk`, `repos.transactions`).
# Why a test, not an import contract: import-linter sees imports, not uses. Forbidding repos.models would
# forbid the choices and types a face legitimately names, and it squashes external packages to their root,
# so it cannot forbid django.db while allowing django.http. Not seen: model instances' .save()/.delete()
# (storage and files have methods of those names) and iterating a lazy queryset a selector handed over;
# those are left to review.
FACES = ("wire", "api", "web")
ORM_MANAGERS = frozenset({"objects", "_default_manager", "_base_manager"})
ORM_ONLY_METHODS = frozenset(
    {
        "aggregate",
        "all",
        "annotate",
        "bulk_create",
        "bulk_update",
        "defer",
        "distinct",
        "earliest",
        "exclude",
        "extra",
        "filter",
        "first",
        "get_or_create",
        "in_bulk",
        "last",
        "latest",
        "only",
        "order_by",
        "prefetch_related",
        "raw",
        "refresh_from_db",
        "select_for_update",
        "select_related",
        "update_or_create",
        "using",
        "values_list",
    }
)
DATABASE_MODULES = ("django.db", "repos.bulk", "repos.transactions")


def _is_database_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in DATABASE_MODULES)


def orm_uses(source: str) -> list[str]:
    """Return ``line: what`` for each place *source* reaches the database itself (see the rule above)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _is_database_module(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            if any(_is_database_module(name) for name in names):
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and node.attr in ORM_MANAGERS:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ORM_ONLY_METHODS:
            found.append(f"{node.lineno}: .{node.func.attr}()")
    return sorted(found, key=lambda use: int(use.split(":")[0]))


def test_the_database_guard_sees_queries():
    source = (
        "from django.db import transaction\n"
        "from django.db.models import Sum\n"
        "from repos.bulk import insert_ignore\n"
        "import django.db.models\n"
        "from django import db\n"
        "n = Object.objects.count()\n"
        "heads = repo.branches.values_list('name', flat=True)\n"
        "store.storage.save(name, data); hasher.update(chunk); body.get('want')\n"
    )
    seen = orm_uses(source)
    assert [use.split(":")[0] for use in seen] == ["1", "2", "3", "4", "5", "6", "7"], seen


@pytest.mark.parametrize("face", FACES)
def test_faces_do_not_query_the_database(face):
    uses = [f"{p.relative_to(REPO)}:{use}" for p in source_files([face]) for use in orm_uses(p.read_text())]
    assert uses == [], f"a face asks repos (services, selectors, access) instead of querying: {uses}"
