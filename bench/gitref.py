"""The git reference: ``git daemon`` on 127.0.0.1 and timed git commands on the same file trees.

The work tree is the very folder the MuseHub client pushes; git keeps its
repository outside it (``--git-dir``) and ignores the client's ``.musehub/``.
Global and system git configuration are ignored so every machine runs the same
git defaults (plus ``gc.auto=0``, so no background gc lands inside a timing).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.hub import free_port, stop_process, wait_until

GIT_ARGS = [
    "-c",
    "user.name=bench",
    "-c",
    "user.email=bench@127.0.0.1",
    "-c",
    "gc.auto=0",
    "-c",
    "init.defaultBranch=main",
]


def git_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"})
    return env


def git_version() -> str:
    return subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.strip()


class Git:
    """Runs git commands with a clean environment; :meth:`timed` returns the wall time of one command."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = git_env(home)

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 1800) -> str:
        result = subprocess.run(
            ["git", *GIT_ARGS, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout

    def timed(self, *args: str, cwd: Path | None = None) -> float:
        started = time.perf_counter()
        self.run(*args, cwd=cwd)
        return time.perf_counter() - started


class GitDaemon:
    """``git daemon`` serving bare repositories under *base* (push enabled) on a free loopback port."""

    def __init__(self, base: Path, git: Git, log_path: Path) -> None:
        self.base = base
        self.git = git
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            [
                "git", "daemon", "--reuseaddr", f"--base-path={self.base}", "--export-all",
                "--enable=receive-pack", "--listen=127.0.0.1", f"--port={self.port}", str(self.base),
            ],
            env=self.git.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        probe = self.base / "probe.git"
        self.git.run("init", "--bare", "-q", str(probe))
        wait_until(lambda: self._ls_remote("probe.git"), 30, "git daemon")

    def _ls_remote(self, name: str) -> bool:
        result = subprocess.run(["git", "ls-remote", self.url(name)], env=self.git.env, capture_output=True, timeout=10)
        return result.returncode == 0

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def new_bare(self, name: str) -> str:
        """Create an empty bare repository *name* (``x.git``) and return its URL."""
        self.git.run("init", "--bare", "-q", str(self.base / name))
        return self.url(name)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class GitTree:
    """A git repository kept in *git_dir* whose work tree is *tree* (the MuseHub client's folder)."""

    def __init__(self, git: Git, git_dir: Path, tree: Path) -> None:
        self.git = git
        self.args = [f"--git-dir={git_dir}", f"--work-tree={tree}"]
        self.tree = tree
        git.run("init", "-q", "--bare", str(git_dir))
        git.run(*self.args, "config", "core.bare", "false")
        (git_dir / "info").mkdir(exist_ok=True)
        (git_dir / "info" / "exclude").write_text(".musehub/\n")

    def commit_all(self, message: str) -> float:
        """``git add -A`` + ``git commit``; return the seconds taken."""
        started = time.perf_counter()
        self.git.run(*self.args, "add", "-A", cwd=self.tree)
        self.git.run(*self.args, "commit", "-q", "-m", message, cwd=self.tree)
        return time.perf_counter() - started

    def push(self, url: str) -> float:
        return self.git.timed(*self.args, "push", "-q", url, "HEAD:refs/heads/main", cwd=self.tree)
