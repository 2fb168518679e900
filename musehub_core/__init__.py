"""The pure-Python core shared by the hub and the client: ids, errors, manifests, the mpack codec,
the commit record (records) and the native protocol's words (protocol).

Nothing here imports Django (a test and an import-linter contract keep it so):
the installable client ships this package beside its own.
"""
