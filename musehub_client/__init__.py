"""The reference MuseHub client, as an installable package that imports no Django.

Modules, by concern:

- :mod:`musehub_client.http`: :class:`~musehub_client.http.HubClient` (the
  mpack protocol over requests), Bearer auth, error decoding, exit codes, retries.
- :mod:`musehub_client.state`: ``.musehub/state.json`` and the stat cache.
- :mod:`musehub_client.worktree`: scanning and hashing the tree (reporting what
  it cannot store), safe writes, checkout, planning a pull.
- :mod:`musehub_client.packs`: the push pack, verifying downloaded packs
  (snapshot deltas included), the local pack store, downloads.
- :mod:`musehub_client.pushing`: the one push sequence (plan → pack →
  upload/push → save state) that ``push`` and the merge's push both run.
- :mod:`musehub_client.fetching`: fetching into a working folder, what
  ``fetch``, ``pull`` and ``merge`` share.
- :mod:`musehub_client.merging`: ``merge`` BRANCH, the push that finishes it, ``--abort``.
- :mod:`musehub_client.operations`: push / clone / fetch / pull as functions
  returning result dataclasses (it builds on all of the above; nothing imports it but the CLI).
- :mod:`musehub_client.threads`: how many threads hash and compress, and in which batches.
- :mod:`musehub_client.files`: reading files whole, a batch at a time in C (``_scan``) where it is built.
- :mod:`musehub_client.cli`: the command line (``musehub``, ``python -m musehub_client``).

Besides the standard library it uses msgpack, zstandard, requests and the pure
core package :mod:`musehub_core`.
"""

__version__ = "0.1.0"
