"""A hub grown to thousands of repositories through the real push path: what stays flat, what grows with the hub.

Usage (from the repository root)::

    python -m bench.scale [--quick] [--steps 10,100,1000] [--files N] [--commits N] [--out FILE]
                          [--max-minutes M] [--keep] [--no-whole-fsck]
    make bench-scale BENCH_SCALE_ARGS="--quick"

It starts the stack of ``bench.run`` (a fresh PostgreSQL database, moto S3,
gunicorn; :mod:`bench.hub`) and grows one hub step by step. Every repository
is pushed through ``mpack/upload`` + ``mpack/push`` exactly as the client
pushes; every fourth repository is a fork of the one before it (the same packs
pushed again: it shares that repository's commits, snapshots and blobs, and
adds only refs). One *probe* repository with a 28-commit history (the size of
the issue's walk) is measured at every step:

- latencies (median of several): refs, a one-file push, the incremental fetch
  of it, a clone, REST log / compare / tree, admin lists (objects, index,
  commits) and admin searches (an object id prefix, commit text);
- every maintenance command's wall time and peak memory (``musehub_stats``
  with and without ``--repo``, ``musehub_gc --dry-run --grace 0``,
  ``musehub_fsck --repo`` and whole-hub ``musehub_fsck``), and after the last
  step ``musehub_gc`` once a repository was deleted;
- rows and bytes per row of every big table.

The table (one column per step) is printed and written to
``bench/results/<date>-scale-<quick|full>.md``. The flat rows should stay
flat; a row that grows with the hub names a query that reads more than the
repository it serves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import data
from bench.hub import BENCH_USER, REPO_ROOT, Hub, pg_version
from musehub_client import operations
from musehub_client.http import HubClient
from musehub_core.ids import blob_id

STEPS = {"quick": [10, 50], "full": [10, 100, 1_000]}
FORK_EVERY = 4  # every 4th repository is a fork of the one created before it
PROBE = "probe"
PROBE_COMMITS = 28
ADMIN = ("benchadmin", "bench-admin-password")
SIZES = (1_000, 6_000)  # bytes of each generated file: most are small, as in the hub
BIG_TABLES = (
    "musehub_commits",
    "musehub_commit_graph",
    "musehub_commit_refs",
    "musehub_snapshots",
    "musehub_snapshot_refs",
    "musehub_objects",
    "musehub_object_refs",
    "musehub_mpack_index",
    "musehub_mpacks",
)

# Run a manage.py command and report its peak resident memory (KiB) on the last line of stderr.
_PEAK = (
    "import resource, runpy, sys\n"
    "sys.argv = ['manage.py', *sys.argv[1:]]\n"
    "code = 0\n"
    "try:\n"
    "    runpy.run_path('manage.py', run_name='__main__')\n"
    "except SystemExit as exc:\n"
    "    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)\n"
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)


# --- growing the hub --------------------------------------------------------------------------------


@dataclass
class Pushed:
    pack: bytes
    key: str
    commit: dict
    blobs: int


@dataclass
class Grower:
    """Creates repositories through the real push path: originals from seeded files, forks by pushing them again."""

    hub: Hub
    files: int
    commits: int
    seed: int = 16
    threads: int = 4  # concurrent pushes while growing (gunicorn serves 2 workers x 4 threads)
    created: int = 0

    def url(self, name: str) -> str:
        return f"{self.hub.url}/{BENCH_USER}/{name}"

    def grow_to(self, count: int, deadline: float) -> None:
        """Create repositories until there are *count*, a group of ``FORK_EVERY`` per thread (the fork after its source)."""
        groups = []
        start = self.created
        while self.created < count:
            size = min(FORK_EVERY, count - self.created)
            groups.append(range(self.created, self.created + size))
            self.created += size
        done = 0
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            for finished in pool.map(lambda group: self.grow_group(group, deadline), groups):
                done += finished
                if done // 100 != (done - finished) // 100:
                    say(f"  {start + done} repositories")

    def grow_group(self, group: range, deadline: float) -> int:
        last: list[Pushed] = []
        for index in group:
            if time.monotonic() > deadline:
                raise TimeoutError(f"--max-minutes reached while growing (at repository {index})")
            name = f"r{index:05d}"
            if index % FORK_EVERY == FORK_EVERY - 1 and last:
                self.push_all(name, last)  # a fork: the same packs, so it shares their commits, snapshots and blobs
            else:
                last = self.push_all(name, list(self.history(index, self.commits)))
        return len(group)

    def history(self, index: int, commits: int):
        """Yield the packs of a history of *commits* commits: *files* files, then 3 changed and 1 added per commit."""
        rng = random.Random(self.seed * 1_000_003 + index)
        maker = data.ContentMaker(rng)
        manifest: dict[str, str] = {}
        head: str | None = None
        for step in range(commits):
            blobs: dict[str, bytes] = {}
            if step == 0:
                paths = [f"part{n // 20:02d}/track{n:03d}.txt" for n in range(self.files)]
            else:
                paths = [*rng.sample(sorted(manifest), min(3, len(manifest))), f"part99/new{step:03d}.txt"]
            for path in paths:
                raw = maker.make(rng.choice(["text", "mixed", "binary"]), rng.randint(*SIZES))
                oid = blob_id(raw)
                manifest[path] = oid
                blobs[oid] = raw
            pack, key, commit = data.one_commit_pack(
                dict(manifest), blobs, head, f"repo {index} commit {step}", author=BENCH_USER
            )
            head = commit["commit_id"]
            yield Pushed(pack, key, commit, len(blobs))

    def push_all(self, name: str, pushes: list[Pushed]) -> list[Pushed]:
        client = HubClient(self.url(name), self.hub.token)
        try:
            for pushed in pushes:
                push_pack(client, pushed)
        finally:
            client.close()
        return pushes


def push_pack(client: HubClient, pushed: Pushed) -> None:
    with tempfile.TemporaryFile() as handle:
        handle.write(pushed.pack)
        handle.seek(0)
        client.upload(handle, pushed.key, len(pushed.pack))
    client.push(
        mpack_key=pushed.key,
        branch="main",
        head_commit_id=pushed.commit["commit_id"],
        force=False,
        commits_count=1,
        blobs_count=pushed.blobs,
    )


# --- measuring one step -----------------------------------------------------------------------------


def median_ms(call: Callable[[], object], repeat: int) -> float:
    call()  # warm: connections, caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def checked(response: requests.Response) -> requests.Response:
    if response.status_code >= 400:
        raise RuntimeError(f"{response.request.method} {response.url} answered {response.status_code}: "
                           f"{response.text[:300]}")  # fmt: skip
    return response


@dataclass
class Probe:
    """The repository measured at every step, with a clone kept up to date by fetch."""

    hub: Hub
    work: Path
    grower: Grower
    first_commit: str = ""
    object_id: str = ""
    pushes: int = 0
    session: requests.Session = field(default_factory=requests.Session)
    admin: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"{self.hub.url}/{BENCH_USER}/{PROBE}"

    @property
    def api(self) -> str:
        return f"{self.hub.url}/api/v1/repos/{BENCH_USER}/{PROBE}"

    def create(self) -> None:
        pushes = list(self.grower.history(999_999, PROBE_COMMITS))
        self.grower.push_all(PROBE, pushes)
        self.first_commit = pushes[0].commit["commit_id"]
        self.session.headers["Authorization"] = f"Bearer {self.hub.token}"
        tree = checked(self.session.get(f"{self.api}/tree/main/part00")).json()
        entries = tree.get("entries", tree.get("results", tree)) if isinstance(tree, dict) else tree
        self.object_id = next(e["object_id"] for e in entries if e.get("object_id"))
        operations.clone(self.url, self.work / "probe-clone", token=self.hub.token)
        self.login()

    def login(self) -> None:
        login = f"{self.hub.url}/admin/login/"
        self.admin.get(login)
        token = self.admin.cookies.get("csrftoken", "")
        checked(
            self.admin.post(
                login,
                data={"username": ADMIN[0], "password": ADMIN[1], "csrfmiddlewaretoken": token, "next": "/admin/"},
                headers={"Referer": login},
            )
        )
        if "sessionid" not in self.admin.cookies:
            raise RuntimeError("the admin login failed")

    def measure(self, results: dict[str, str]) -> None:
        s = self.session
        proto = {"X-Muse-Protocol": "mpack"}
        results["refs ms"] = f"{median_ms(lambda: checked(s.get(f'{self.url}/refs', headers=proto)), 9):.1f}"
        push_ms = []
        fetch_ms = []
        for _ in range(3):
            started = time.perf_counter()
            self.push_via_client()
            push_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            operations.fetch(self.work / "probe-clone", token=self.hub.token)
            fetch_ms.append((time.perf_counter() - started) * 1000)
        results["push one file (client) ms"] = f"{statistics.median(push_ms):.0f}"
        results["incremental fetch (client) ms"] = f"{statistics.median(fetch_ms):.0f}"

        def clone() -> None:
            target = self.work / "probe-fresh"
            shutil.rmtree(target, ignore_errors=True)
            operations.clone(self.url, target, token=self.hub.token)

        results["clone (client) ms"] = f"{median_ms(clone, 3):.0f}"
        results["REST commits ms"] = f"{median_ms(lambda: checked(s.get(f'{self.api}/commits')), 7):.1f}"
        compare = f"{self.api}/compare/{self.first_commit}...main"
        results["REST compare ms"] = f"{median_ms(lambda: checked(s.get(compare)), 7):.1f}"
        results["REST tree ms"] = f"{median_ms(lambda: checked(s.get(f'{self.api}/tree/main/part00')), 7):.1f}"
        a = self.admin
        admin = f"{self.hub.url}/admin/repos"
        for label, path, params in (
            ("admin objects list ms", "object/", {}),
            ("admin index list ms", "mpackindex/", {}),
            ("admin commits list ms", "commit/", {}),
            ("admin search object id prefix ms", "object/", {"q": self.object_id[:16]}),
            ("admin search commit text ms", "commit/", {"q": "commit 7"}),
        ):
            results[label] = f"{median_ms(lambda p=path, q=params: checked(a.get(f'{admin}/{p}', params=q)), 5):.0f}"

    def push_via_client(self) -> None:
        """A one-file change pushed by ``operations.push`` from the probe clone (the client's own path)."""
        root = self.work / "probe-clone"
        self.pushes += 1
        (root / "part99").mkdir(exist_ok=True)
        (root / "part99" / f"push{self.pushes:03d}.txt").write_bytes(f"push {self.pushes}\n".encode() * 50)
        operations.push(root, token=self.hub.token, message=f"probe push {self.pushes}", out=None)


def run_command(hub: Hub, *args: str, timeout: float = 3600) -> tuple[float, float, str]:
    """Run ``manage.py *args`` on the bench stack; return (seconds, peak MB, stdout)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        cwd=REPO_ROOT,
        env=hub.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    peak = 0.0
    for line in result.stderr.splitlines():
        if line.startswith("PEAK_KB "):
            peak = int(line.split()[1]) / 1024
    if result.returncode != 0 and "fsck" not in args[0]:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds, peak, result.stdout


def measure_commands(hub: Hub, results: dict[str, str], *, whole_fsck: bool) -> None:
    commands = [
        ("manage.py start-up alone (shell -c pass)", ["shell", "-c", "pass"]),
        ("musehub_stats", ["musehub_stats", "--no-progress"]),
        ("musehub_stats --repo", ["musehub_stats", "--no-progress", "--repo", f"{BENCH_USER}/{PROBE}"]),
        ("musehub_gc --dry-run --grace 0", ["musehub_gc", "--no-progress", "--dry-run", "--grace", "0"]),
        ("musehub_fsck --repo", ["musehub_fsck", "--no-progress", "--repo", f"{BENCH_USER}/{PROBE}"]),
        ("musehub_repack --repo", ["musehub_repack", "--no-progress", "--repo", f"{BENCH_USER}/{PROBE}"]),
        ("musehub_migrate_legacy (nothing to move)", ["musehub_migrate_legacy", "--no-progress"]),
        ("musehub_snapshot_deltas --dry-run", ["musehub_snapshot_deltas", "--no-progress", "--dry-run"]),
    ]
    if whole_fsck:
        commands.append(("musehub_fsck (whole hub)", ["musehub_fsck", "--no-progress"]))
    for label, args in commands:
        seconds, peak, _ = run_command(hub, *args)
        if seconds < 20:  # a second run, and the faster of the two: less noise from a busy machine
            again, peak_again, _ = run_command(hub, *args)
            seconds, peak = min(seconds, again), max(peak, peak_again)
        results[f"{label} s / peak MB"] = f"{seconds:.1f} / {peak:.0f}"


def table_sizes(hub: Hub, results: dict[str, str]) -> None:
    for size in hub.relation_sizes():
        if size.name in BIG_TABLES and size.rows:
            results[f"{size.name} rows / B per row"] = f"{size.rows:,} / {size.total // size.rows:,}"


def gc_after_delete(hub: Hub, grower: Grower) -> dict[str, str]:
    """Delete one original repository through the REST API, then time gc's dry run (the issue's 28 s case)."""
    name = "r00000"
    checked(
        requests.delete(f"{hub.url}/api/v1/repos/{BENCH_USER}/{name}", headers={"Authorization": f"Bearer {hub.token}"})
    )
    seconds, peak, out = run_command(hub, "musehub_gc", "--no-progress", "--dry-run", "--grace", "0")
    line = next((line for line in out.splitlines() if line.startswith("Would delete")), "").split(";")[0]
    return {"musehub_gc --dry-run --grace 0 after deleting a repository s / peak MB": f"{seconds:.1f} / {peak:.0f}",
            "  what it would delete": line.replace("Would delete ", "")}  # fmt: skip


# --- the run ----------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"stopped by signal {signum}")


def markdown(steps: list[int], columns: list[dict[str, str]], extra: dict[str, str]) -> str:
    rows: list[str] = []
    for column in columns:
        rows.extend(key for key in column if key not in rows)
    head = "| operation | " + " | ".join(f"{n:,} repos" for n in steps) + " |"
    lines = [head, "|---|" + "---:|" * len(steps)]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(column.get(row, "") for column in columns) + " |")
    if extra:
        lines += ["", "| after the last step | |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in extra.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 and 50 repositories (a few minutes)")
    parser.add_argument(
        "--steps", default=None, help="repositories at each step, comma-separated (default 10,100,1000)"
    )
    parser.add_argument(
        "--files", type=int, default=0, help="files in each repository's first commit (default 100; quick 20)"
    )
    parser.add_argument("--commits", type=int, default=0, help="commits per repository (default 6; quick 3)")
    parser.add_argument("--threads", type=int, default=4, help="concurrent pushes while growing (default 4)")
    parser.add_argument("--no-whole-fsck", action="store_true", help="skip the whole-hub musehub_fsck at each step")
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (default bench/results/<date>-scale-<mode>.md)"
    )
    parser.add_argument("--max-minutes", type=float, default=90, help="stop (and clean up) after this long")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) for inspection")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    steps = [int(s) for s in args.steps.split(",")] if args.steps else STEPS[mode]
    files = args.files or (20 if args.quick else 100)
    commits = args.commits or (3 if args.quick else 6)
    command = "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:])

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGALRM, _on_signal)
    signal.alarm(int(args.max_minutes * 60))
    deadline = time.monotonic() + args.max_minutes * 60
    work = Path(tempfile.mkdtemp(prefix="musehub-scale-"))
    hub = Hub(work / "hub")
    columns: list[dict[str, str]] = []
    extra: dict[str, str] = {}
    started = time.perf_counter()
    try:
        say(f"{mode}: steps {steps}, {files} files x {commits} commits per repository; work folder {work}")
        hub.start()
        hub.start_run()
        hub.manage(
            "shell", "-c",
            "from django.contrib.auth.models import User; "
            f"User.objects.create_superuser({ADMIN[0]!r}, '', {ADMIN[1]!r})",
        )  # fmt: skip
        grower = Grower(hub, files=files, commits=commits, threads=args.threads)
        probe = Probe(hub, work, grower)
        probe.create()
        for step in steps:
            say(f"growing to {step} repositories")
            t = time.perf_counter()
            grower.grow_to(step, deadline)
            say(f"grown in {time.perf_counter() - t:.0f}s; measuring")
            hub.manage("shell", "-c", "from django.db import connection; connection.cursor().execute('ANALYZE')")
            results: dict[str, str] = {}
            probe.measure(results)
            measure_commands(hub, results, whole_fsck=not args.no_whole_fsck)
            table_sizes(hub, results)
            columns.append(results)
            print(markdown(steps[: len(columns)], columns, {}), flush=True)
        extra = gc_after_delete(hub, grower)
    except (Interrupted, TimeoutError) as exc:
        say(f"stopped early: {exc}")
    finally:
        hub.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if not columns:
        return 1
    done = steps[: len(columns)]
    text = "\n".join(
        [
            f"# MuseHub at scale ({mode})",
            "",
            f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
            f"{pg_version()}; Python {sys.version.split()[0]}",
            f"- command: `{command.strip()}` ({time.perf_counter() - started:.0f} s in all)",
            f"- each repository: {files} files of 1-6 KB, then {commits - 1} commits changing 3 files and adding one, "
            f"pushed one commit per mpack; every {FORK_EVERY}th repository is a fork (the previous repository's packs "
            f"pushed again); the probe has {PROBE_COMMITS} commits and gets 3 client pushes per step",
            "- latencies: medians (ms) on the probe; commands: wall seconds (the faster of two runs when under 20 s) / peak RSS MB of the manage.py process",
            "",
            markdown(done, columns, extra),
            "",
        ]
    )
    out = args.out or REPO_ROOT / "bench" / "results" / f"{dt.date.today()}-scale-{mode}.md"
    out.write_text(text)
    print(text)
    say(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
