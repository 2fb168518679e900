"""Builds the client's optional C walk (``musehub_client._scan``); the package itself is described in pyproject.toml.

``make`` builds it in place (``python setup.py build_ext --inplace``); ``pip install .``
builds it too. Without a C compiler the build is skipped and the client walks the
tree in Python (slower on big trees, otherwise the same).
"""

import os

from setuptools import Extension, setup

native = [Extension("musehub_client._scan", ["musehub_client/_scan.c"], optional=True)] if os.name == "posix" else []
setup(ext_modules=native)
