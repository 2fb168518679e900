"""Re-store every snapshot the way new pushes store them: deltas against the first parent's snapshot.

Hubs that predate snapshot deltas hold each snapshot as a full manifest.
:func:`convert_snapshots` walks the commit graph oldest generation first and
re-plans every snapshot with ``repos.manifests.SnapshotPlanner``, so depths
and checkpoints are consistent hub-wide. Manifests (and so snapshot ids) do
not change, only how rows are stored; a row is rewritten only when its stored
bytes change, each batch in its own transaction, so the command can be stopped
and run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from repos.manifests import SnapshotPlanner, SnapshotRow, iter_manifests, rewrite_rows, stored_bytes
from repos.models import CommitGraph
from repos.services.maintenance import Progress, chunks, no_progress

_BATCH = 500


@dataclass
class ConvertReport:
    snapshots: int = 0
    rewritten: int = 0
    deltas: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def convert_snapshots(*, dry_run: bool = False, progress: Progress = no_progress) -> ConvertReport:
    """Store every snapshot as a delta where that is smaller; return what changed (nothing is written when dry)."""
    report = ConvertReport()
    graph = CommitGraph.objects.order_by("generation", "commit_id").values_list("parent_ids", "snapshot_id")
    by_commit = dict(CommitGraph.objects.values_list("commit_id", "snapshot_id"))
    order: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for parent_ids, snapshot_id in graph.iterator(chunk_size=10_000):
        if snapshot_id not in seen:
            seen.add(snapshot_id)
            order.append((snapshot_id, by_commit.get(parent_ids[0]) if parent_ids else None))
    planner = SnapshotPlanner()
    with progress(total=len(order), desc="snapshots", unit="snap") as bar:
        for batch in chunks(order, _BATCH):
            prefer = dict(batch)
            stored = stored_bytes(prefer)
            changed: list[SnapshotRow] = []
            for sid, manifest in iter_manifests([sid for sid, _ in batch]):
                row = planner.add(sid, manifest, base_id=prefer[sid])
                before, base = stored[sid]
                report.snapshots += 1
                report.bytes_before += len(before)
                report.bytes_after += len(row.blob)
                report.deltas += row.base_id is not None
                if row.blob != before or row.base_id != base:
                    report.rewritten += 1
                    changed.append(row)
            bar.update(len(batch))
            if changed and not dry_run:
                with transaction.atomic():
                    rewrite_rows(changed)
    return report
