"""The core's C speedups (``musehub_core/_speedups.c``, built by setup.py), or None where they were not built.

Every caller keeps the Python way beside them, which gives the same results.
"""

try:
    from musehub_core import _speedups as speedups
except ImportError:  # pragma: no cover - the Makefile builds it
    speedups = None  # type: ignore[assignment]  # a module or None: callers test for None
