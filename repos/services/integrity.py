"""Verify one stored mpack against its key and its index rows (the admin's "Verify integrity" action).

The pack is streamed from storage once: ``index_mpack`` hashes its bytes (the
key must match), verifies that every blob decodes to its object id, and says
where each blob's ``content`` lies. Every ``MPackIndex`` row of the pack must
then name a blob the pack holds, at that byte range and in that encoding, so a
ranged read of the row decodes to its object id. A pack that passes loses the
mark a streamed fetch puts on a pack it found damaged (``MPack.damaged_at``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from musehub_core.errors import MalformedPack
from musehub_core.mpack import index_mpack
from repos.models import MPack, MPackIndex
from repos.services.maintenance import maintenance_limits
from repos.storage.backend import get_backend


@dataclass
class PackCheck:
    """What verifying one pack found; ``ok`` when nothing is wrong."""

    mpack_id: str
    blobs: int = 0
    index_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_mpack(mpack_id: str) -> PackCheck:
    """Read pack *mpack_id* from storage and return every problem with its bytes or its index rows.

    Raises StorageUnavailable when storage cannot be reached.
    """
    check = PackCheck(mpack_id)
    stream = get_backend().open_mpack(mpack_id)
    if stream is None:
        check.problems.append(f"mpack {mpack_id} is missing from storage.")
        return check
    try:
        with stream:
            contents = index_mpack(stream, limits=maintenance_limits(), verify=True)
    except MalformedPack as exc:
        check.problems.append(f"mpack {mpack_id} is damaged: {exc.message}")
        return check
    if contents.digest != mpack_id:
        check.problems.append(f"mpack {mpack_id}: its bytes hash to {contents.digest}, not to its key.")
    blobs = {b.object_id: b for b in contents.blobs}
    check.blobs = len(blobs)
    rows = MPackIndex.objects.filter(mpack_id=mpack_id).values_list("entity_id", "offset", "length", "encoding")
    for object_id, offset, length, encoding in rows.iterator(chunk_size=10_000):
        check.index_rows += 1
        blob = blobs.get(object_id)
        if blob is None:
            check.problems.append(f"index row of {object_id}: the pack does not hold that object.")
        elif offset is not None and (offset, length) != (blob.offset, blob.length):
            check.problems.append(
                f"index row of {object_id}: range {offset}+{length} but the pack holds it at "
                f"{blob.offset}+{blob.length}."
            )
        elif (encoding or "") != blob.encoding:
            check.problems.append(
                f"index row of {object_id}: encoding {encoding or 'raw'!r} but the pack stores it as "
                f"{blob.encoding or 'raw'!r}."
            )
    if check.ok:  # sound again (restored, say): streamed fetches may check it as a whole again
        MPack.objects.filter(mpack_id=mpack_id, damaged_at__isnull=False).update(damaged_at=None)
    return check
