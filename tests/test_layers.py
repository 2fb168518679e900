"""The layout stays true: import contracts (also run by make lint), one owner of the stored manifest."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("musehub", "musehub_core", "musehub_client", "repos", "hubhttp", "wire", "api", "bench")


def source_files():
    for package in APP_PACKAGES:
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


def test_views_raise_domain_errors_and_only_hubhttp_builds_error_bodies():
    builders = [
        str(p.relative_to(REPO))
        for p in source_files()
        if p.parts[-2] != "hubhttp" and re.search(r"""["']error["']\s*:""", p.read_text())
    ]
    assert builders == [] or all(b.startswith(("musehub_client", "bench")) for b in builders), builders
