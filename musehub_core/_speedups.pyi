# The C module's signatures (musehub_core/_speedups.c), for the type checker; each returns None where the
# Python way must run instead (see the callers in musehub_core.ids and .textdiff).
from collections.abc import Mapping

def snapshot_payload(manifest: Mapping[str, str], /) -> bytes | None: ...
def myers(
    before: list[str], after: list[str], units: int, seconds: float, /
) -> tuple[list[tuple[str, int, int, int, int]] | None, int]: ...
