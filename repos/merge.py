"""Moved to :mod:`musehub_core.merge` (the hub's proposals and the client's ``merge`` share it); import from there."""

from musehub_core.merge import (  # noqa: F401
    BOTH_ADDED,
    BOTH_MODIFIED,
    CONFLICT_KINDS,
    DELETED_MODIFIED,
    FILE_DIRECTORY,
    MODIFIED_DELETED,
    ThreeWay,
    describe_conflicts,
    merge_manifests,
    three_way,
)
