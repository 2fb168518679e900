# The C module's signatures (musehub_client/_scan.c), for the type checker.
from collections.abc import Mapping, Sequence

# walk(root, skip, known, threads) -> (manifest, same, changed, others, unreadable, files); known and same
# hold the stat cache's entries, (size, mtime_ns, inode, object id).
def walk(
    root: str, skip: str, known: Mapping[str, tuple[int, int, int, str]], threads: int = 1, /
) -> tuple[
    dict[str, str | None],
    dict[str, tuple[int, int, int, str]],
    list[tuple[str, int, int, int]],
    list[tuple[str, int]],
    list[tuple[str, str]],
    int,
]: ...
def write_files(root: str, files: Sequence[tuple[str, bytes]], /) -> None: ...
def read_files(root: str, relatives: Sequence[str], /) -> list[bytes | int]: ...
