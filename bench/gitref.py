"""The git reference: ``git daemon`` on 127.0.0.1 and timed git commands on the same file trees.

The work tree is the very folder the MuseHub client pushes; git keeps its
repository outside it (``--git-dir``) and ignores the client's ``.musehub/``.
Global and system git configuration are ignored so every machine runs the same
git defaults (plus ``gc.auto=0``, so no background gc lands inside a timing).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterable
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

    def timed_input(self, *args: str, stdin: Path, cwd: Path | None = None, timeout: float = 1800) -> float:
        """Run a git command reading the file *stdin*; return its wall time (``git fast-import < stream``)."""
        started = time.perf_counter()
        with open(stdin, "rb") as handle:
            result = subprocess.run(
                ["git", *GIT_ARGS, *args], cwd=cwd, env=self.env, stdin=handle, capture_output=True, timeout=timeout
            )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]!r}")
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


def tree_size(root: Path) -> int:
    """Return the bytes of every file under *root* (apparent sizes)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def pack_bytes(git_dir: Path) -> int:
    """Return the bytes of the ``.pack`` files of the repository at *git_dir*."""
    return sum(p.stat().st_size for p in (git_dir / "objects" / "pack").glob("*.pack"))


def _parents() -> dict[int, int]:
    """Return {pid: parent pid} of every process (from /proc/<pid>/stat)."""
    found: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
            found[int(entry.name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return found


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class DescendantPeak:
    """Sample the peak memory of the processes *pid* spawns (git daemon: upload-pack, pack-objects) in a thread.

    With *exclude*, the subtrees of those pids are left out (for this process:
    the servers it started, so that only ``git clone`` and its helpers count).

    Every *interval* seconds it sums the VmHWM (peak resident memory) of the
    live descendants; :attr:`peak_kb` is the largest sum seen. A process that
    starts and ends between two samples is missed, and the last rise of one
    before it exits may be.
    """

    def __init__(self, pid: int, interval: float = 0.05, exclude: Iterable[int] = ()) -> None:
        self.pid = pid
        self.interval = interval
        self.exclude = frozenset(exclude)  # subtrees not to count (servers this process started)
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="git-memory", daemon=True)

    def _sample(self) -> None:
        parents = _parents()
        children: dict[int, list[int]] = {}
        for child, parent in parents.items():
            children.setdefault(parent, []).append(child)
        todo, total = list(children.get(self.pid, [])), 0
        while todo:
            pid = todo.pop()
            if pid in self.exclude:
                continue
            total += _hwm_kb(pid)
            todo.extend(children.get(pid, []))
        self.peak_kb = max(self.peak_kb, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> DescendantPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def own_memory_kb() -> tuple[int, int]:
    """Return this process's (VmRSS, VmHWM) in KiB."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key in found:
                    found[key] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return found["VmRSS:"], found["VmHWM:"]


def reset_own_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (``/proc/self/clear_refs``); False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False
