"""Builds the optional C parts of the client and its core; the package itself is described in pyproject.toml.

- ``musehub_client._scan``: the working-tree walk of a push (POSIX only).
- ``musehub_core._speedups``: the bytes a snapshot id hashes (the hub uses it too).

``make`` builds them in place (``python setup.py build_ext --inplace``); ``pip
install .`` builds them into the package. Without a C compiler they are left
out and the same work runs in Python (slower on big trees, otherwise the same).
"""

import os

from setuptools import Extension, setup

native = [Extension("musehub_core._speedups", ["musehub_core/_speedups.c"], optional=True)]
if os.name == "posix":
    native.append(Extension("musehub_client._scan", ["musehub_client/_scan.c"], optional=True))
setup(ext_modules=native)
