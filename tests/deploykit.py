"""Helpers for deployment tests: run Django in a fresh interpreter configured only by given variables, start servers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "MUSEHUB_ENV": "production",
    "DJANGO_SECRET_KEY": "prod-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "MUSEHUB_ALLOWED_HOSTS": "hub.example.com",
}


def hub_environment(tmp_path: Path, **env: str) -> dict[str, str]:
    """Return this process's environment without the hub's variables, then the settings module, a data dir and *env*."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MUSEHUB_", "DJANGO_", "DATABASE_URL", "PROMETHEUS_", "AWS_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="musehub.settings", MUSEHUB_DATA_DIR=str(tmp_path / "data"), **env)
    return clean


def django_process(tmp_path: Path, script: str = "", umask: int = -1, **env: str) -> subprocess.CompletedProcess:
    """Run ``django.setup()`` then *script* in a fresh interpreter with only *env* configuring the hub (and *umask*)."""
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + script],
        cwd=REPO,
        env=hub_environment(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        umask=umask,
    )


@dataclass
class Server:
    """A server process started by :func:`start_server`, in a session of its own, its output in *log*."""

    url: str
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, path: str = "/health", timeout: float = 60) -> None:
        """Wait until GET *path* answers (any status); fail with the server's output if it exits or never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output()[-3000:]}")
            try:
                requests.get(self.url + path, timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"the server did not answer within {timeout}s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL if it lingers."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_server(argv: list[str], url: str, env: dict[str, str], log: Path) -> Server:
    """Start *argv* in the repository with *env*, in its own session (so :meth:`Server.stop` ends its children too)."""
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            argv, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )  # fmt: skip
    return Server(url, process, log)


@contextlib.contextmanager
def serving(argv: list[str], url: str, env: dict[str, str], log: Path) -> Iterator[Server]:
    """Start *argv* (:func:`start_server`), wait until it answers, and stop it on the way out."""
    server = start_server(argv, url, env, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
