"""Peak memory of an app server worker serving big raw downloads (issue 25, point 2).

Pushes one file of *size* MiB of zeros (zstd-encoded: a push of a few KiB),
then asks for it *concurrent* times at once with anonymous
``GET /api/v1/repos/{owner}/{repo}/raw/main/zeros.bin`` against gunicorn with
one worker of 4 threads, and reports how far the worker's resident memory rose
above where it stood idle: VmHWM (reset through ``/proc/PID/clear_refs`` just
before the downloads) minus VmRSS right before them. Each download is read
and hashed by the script as it arrives, so a server that held the whole reply
would also be seen answering late.

    .venv/bin/python -m bench.raw_rss                 # SQLite + filesystem storage (make run's default)
    .venv/bin/python -m bench.raw_rss --s3            # PostgreSQL + a moto S3 server (needs PostgreSQL)
    .venv/bin/python -m bench.raw_rss --size-mib 400 --concurrent 4 --range --incompressible

Not a test: it starts a gunicorn (and moto) of its own on 127.0.0.1 and stops
them by process id when it ends (``bench.hub``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import tempfile
import time
from pathlib import Path

import requests

from bench.hub import BENCH_USER, Hub
from bench.pushkit import push_trees
from musehub_core.ids import blob_id

MiB = 1024 * 1024
PATH = "zeros.bin"


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one gunicorn worker, found {children}")
    return int(children[0])


def push_zeros(hub: Hub, slug: str, size: int, *, incompressible: bool = False) -> str:
    """Push one commit holding ``zeros.bin`` (*size* zero bytes, zstd-encoded); return its object id.

    With *incompressible* the file holds random bytes instead, stored as they are.
    """
    zeros = os.urandom(size) if incompressible else bytes(size)
    oid = blob_id(zeros)
    _, pack_bytes = push_trees(hub, slug, [{PATH: zeros}], zstd=True)
    del zeros
    what = "random bytes" if incompressible else "zeros"
    print(f"pushed {size // MiB} MiB of {what} as a {pack_bytes}-byte pack")
    return oid


def download(url: str, headers: dict[str, str]) -> tuple[int, int, str, float, float]:
    """GET *url*, hashing as it arrives; return (status, bytes, sha256, seconds to first byte, seconds)."""
    start = time.perf_counter()
    digest = hashlib.sha256()
    count = 0
    first = None
    with requests.get(url, headers=headers, stream=True, timeout=600) as reply:
        for chunk in reply.iter_content(1024 * 1024):
            if first is None:
                first = time.perf_counter() - start
            digest.update(chunk)
            count += len(chunk)
        return reply.status_code, count, "sha256:" + digest.hexdigest(), first or 0.0, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3", action="store_true", help="PostgreSQL + moto S3 instead of SQLite + filesystem")
    parser.add_argument("--size-mib", type=int, default=400)
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--range", action="store_true", help="also time a ranged GET of the last MiB")
    parser.add_argument("--incompressible", action="store_true", help="random bytes (stored raw) instead of zeros")
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(prefix="raw-rss-") as tmp, Hub(Path(tmp), embedded=not args.s3, workers=1) as hub:
        hub.start_run()
        oid = push_zeros(hub, "raw", size, incompressible=args.incompressible)
        url = f"{hub.url}/api/v1/repos/{BENCH_USER}/raw/raw/main/{PATH}"
        assert hub.gunicorn is not None
        worker = _worker_pid(hub.gunicorn.pid)
        requests.get(f"{hub.url}/api/v1/repos/{BENCH_USER}/raw/tree/main", timeout=30).raise_for_status()  # warm
        time.sleep(0.5)
        idle_kb = _status_kb(worker, "VmRSS")
        Path(f"/proc/{worker}/clear_refs").write_text("5")  # VmHWM := VmRSS
        with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
            results = list(pool.map(lambda _: download(url, {}), range(args.concurrent)))
        peak_kb = _status_kb(worker, "VmHWM")
        for status, count, digest, first, seconds in results:
            ok = status == 200 and count == size and digest == oid
            print(
                f"  GET raw: {status}, {count // MiB} MiB, first byte {first:.3f} s, {seconds:.1f} s, {'ok' if ok else 'WRONG'}"
            )
        print(
            f"worker idle {idle_kb / 1024:.0f} MB, peak {peak_kb / 1024:.0f} MB: "
            f"{(peak_kb - idle_kb) / 1024:.0f} MB above idle for {args.concurrent} concurrent "
            f"{args.size_mib} MiB raw downloads ({'S3' if args.s3 else 'filesystem'})"
        )
        if args.range:
            idle_kb = _status_kb(worker, "VmRSS")
            Path(f"/proc/{worker}/clear_refs").write_text("5")
            status, count, _, first, seconds = download(url, {"Range": "bytes=-1048576"})
            peak_kb = _status_kb(worker, "VmHWM")
            print(
                f"  GET raw, Range: bytes=-1048576: {status}, {count} bytes, {seconds:.1f} s, "
                f"peak {(peak_kb - idle_kb) / 1024:.0f} MB above idle"
            )


if __name__ == "__main__":
    main()
