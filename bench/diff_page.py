"""The security review's costly commit page, timed against gunicorn (issue 25, point 1).

Pushes ``big.txt`` (40,000 lines ``00000``…``39999``) and ``small.txt``
(8,000 lines), then the same files with their lines reordered (evens, then
odds), and times anonymous ``GET /{owner}/{slug}/commit/<id>``: alone, then
*concurrent* at once while ``GET /health`` is asked every 20 ms: the same
commit (its refused diffs remembered after the first view), and *concurrent*
commits of distinct blobs (each searched in full, the worst case). Before
issue 25 that page took 173 s of CPU (difflib); now its diffs draw on a
bounded budget and say "Diff too large to show" past it.

    .venv/bin/python -m bench.diff_page                  # SQLite + filesystem storage (make run's default)
    .venv/bin/python -m bench.diff_page --concurrent 8 --rounds 5

Not a test: it starts a gunicorn of its own (2 workers x 4 threads, as
``make bench``) on 127.0.0.1 and stops it by process id when it ends.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.hub import BENCH_USER, Hub
from bench.pushkit import push_trees


def lines(count: int) -> list[str]:
    return [f"{i:05d}" for i in range(count)]


def text(rows: list[str]) -> bytes:
    return ("\n".join(rows) + "\n").encode()


def timed_get(url: str) -> tuple[float, str]:
    start = time.perf_counter()
    reply = requests.get(url, timeout=600)
    reply.raise_for_status()
    return time.perf_counter() - start, reply.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="diff-page-") as tmp, Hub(Path(tmp), embedded=True) as hub:
        hub.start_run()
        urls = [review_commit(hub, f"diffs-{n}") for n in range(1 + args.concurrent * args.rounds)]
        first, page = timed_get(urls[0])
        assert page.count("Diff too large to show") == 2, "both reordered files should be refused"
        alone = [timed_get(urls[0])[0] for _ in range(10)]
        print(f"commit page, first view: {first * 1000:.0f} ms; then median {statistics.median(alone) * 1000:.0f} ms")
        rounds = [[urls[0]] * args.concurrent] * args.rounds
        report(hub, "the same commit", rounds)
        fresh = urls[1:]
        report(
            hub,
            "distinct commits",
            [fresh[r * args.concurrent : (r + 1) * args.concurrent] for r in range(args.rounds)],
        )


def review_commit(hub: Hub, slug: str) -> str:
    """Push the review's two commits (blobs of this repository only) to *slug*; return the second's page URL."""
    big, small = [slug, *lines(40_000)], [slug, *lines(8_000)]
    (_, reordered), _ = push_trees(
        hub,
        slug,
        [
            {"big.txt": text(big), "small.txt": text(small)},
            {"big.txt": text(big[::2] + big[1::2]), "small.txt": text(small[::2] + small[1::2])},
        ],
    )
    return f"{hub.url}/{BENCH_USER}/{slug}/commit/{reordered.removeprefix('sha256:')}"


def report(hub: Hub, what: str, rounds: list[list[str]]) -> None:
    """Ask each round's URLs at once while GET /health is asked every 20 ms; print the times."""
    pages: list[float] = []
    health: list[float] = []
    for urls in rounds:
        done = threading.Event()

        def watch(done: threading.Event = done) -> None:
            while not done.is_set():
                health.append(timed_get(f"{hub.url}/health")[0])
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        threads = [threading.Thread(target=lambda u=url: pages.append(timed_get(u)[0])) for url in urls]
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        watcher.join()
    print(
        f"{len(rounds[0])} at once ({what}), {len(rounds)} rounds: page median {statistics.median(pages) * 1000:.0f} ms, "
        f"max {max(pages) * 1000:.0f} ms; GET /health meanwhile ({len(health)} asked): median "
        f"{statistics.median(health) * 1000:.1f} ms, max {max(health) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
