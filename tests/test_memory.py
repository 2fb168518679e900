"""musehub.memory: an app server hands the memory a big request freed back to the system.

Measured in a fresh interpreter (this one's heap holds the whole test suite):
a burst of 64 KiB allocations that glibc serves from its heap, freed below a
small live object that keeps the heap from shrinking on its own, is what a big
push leaves behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from musehub.memory import Trimmer, resident_bytes

ROOT = Path(__file__).resolve().parent.parent

BURST = textwrap.dedent(
    """
    import json, sys
    from musehub.memory import Trimmer, resident_bytes
    trimmer = Trimmer(int(sys.argv[1]))
    trimmer.after_request()  # the low before the request
    blocks = [bytes([i % 251]) * 65536 for i in range(1600)]  # 100 MiB, 64 KiB at a time: glibc's heap
    pin = bytes([7]) * 65536  # allocated last: the heap cannot shrink from its top on its own
    del blocks
    grown = resident_bytes()
    trimmed = trimmer.after_request()
    print(json.dumps({"grown": grown, "trimmed": trimmed, "after": resident_bytes(), "low": trimmer.low}))
    """
)


def burst(threshold_bytes: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BURST, str(threshold_bytes)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


needs_trim = pytest.mark.skipif(
    Trimmer(1).trim is None or resident_bytes() is None, reason="needs glibc's malloc_trim and /proc"
)


@needs_trim
def test_memory_a_request_freed_goes_back_once_it_passes_the_threshold():
    result = burst(64 * 1024 * 1024)
    assert result["trimmed"] is True
    assert result["grown"] - result["after"] > 64 * 1024 * 1024, result
    assert result["low"] == result["after"], "the next request is measured from here"


@needs_trim
def test_below_the_threshold_nothing_is_trimmed_and_the_memory_stays():
    result = burst(1024 * 1024 * 1024)
    assert result["trimmed"] is False
    assert result["grown"] - result["after"] < 16 * 1024 * 1024, result


def test_a_threshold_of_zero_turns_it_off():
    trimmer = Trimmer(0)
    assert trimmer.trim is None and trimmer.after_request() is False


def test_the_app_server_trims_after_every_request(tmp_path):
    """musehub.wsgi (gunicorn's and runserver's application) connects a Trimmer to request_finished."""
    check = textwrap.dedent(
        """
        import musehub.wsgi
        from django.core.signals import request_finished
        from musehub.memory import Trimmer
        refs = [entry[1] for entry in request_finished.receivers]
        bound = [r() if isinstance(r, __import__("weakref").ReferenceType) else r for r in refs]
        print(sum(isinstance(getattr(f, "__self__", None), Trimmer) for f in bound))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "MUSEHUB_DATA_DIR": str(tmp_path), "MUSEHUB_TRIM_AFTER_MB": "32"}
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
