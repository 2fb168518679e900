"""Helpers for deployment tests: run Django in a fresh interpreter configured only by given variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "MUSEHUB_ENV": "production",
    "DJANGO_SECRET_KEY": "prod-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "MUSEHUB_ALLOWED_HOSTS": "hub.example.com",
}


def django_process(tmp_path: Path, script: str = "", **env: str) -> subprocess.CompletedProcess:
    """Run ``django.setup()`` then *script* in a fresh interpreter with only *env* configuring the hub."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MUSEHUB_", "DJANGO_", "DATABASE_URL", "PROMETHEUS_", "AWS_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="musehub.settings", MUSEHUB_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + script],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
