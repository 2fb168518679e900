"""The pure-Python core shared by the hub and the client: ids, errors, manifests, the mpack codec,
the commit record (records), the native protocol's words (protocol) and how ids and sizes read (formatting).

Nothing here imports Django (a test and an import-linter contract keep it so):
the installable client ships this package beside its own.
"""
