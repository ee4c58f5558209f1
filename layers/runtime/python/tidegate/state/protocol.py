"""What the ingest asks of a window kind's state: where an event goes, and what to write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tidegate import redrive
from tidegate.schemas.decode import DecodedBatch


@dataclass(slots=True)
class Verdict:
    item: dict[str, Any] | None  # the item to write, None when nothing to write
    expected_version: int | None  # None: the item must not exist yet
    applied: list[int]  # records (indices in the batch) the item now holds
    late: list[int]  # records every window of which is final
    duplicates: int


@dataclass(slots=True)
class Group:
    """A batch's records that update one state item: indices into `batch`, ascending."""

    pk: str
    sk: str
    key: str
    indices: list[int]
    batch: DecodedBatch

    def times(self, indices: list[int]) -> list[int]:
        times = self.batch.times
        return [times[i] for i in indices]

    def values(self, indices: list[int]) -> list[dict[str, Any]]:
        values = self.batch.values
        return [values[i] for i in indices]  # type: ignore[misc]  # valid records only

    def fresh(self, item: dict[str, Any] | None) -> tuple[list[int], int, dict[str, str]]:
        """The records not applied to `item` before (a record at or below the item's
        high-water mark of its partition was), how many were, and the marks the fresh ones
        raise. A redriven record the item already holds, or a second copy of one in the
        batch, counts as applied before."""
        batch, indices = self.batch, self.indices
        columns = batch.columns
        seen: dict[str, str] = item.get("hw", {}) if item else {}
        one = columns.partition
        if one is not None:
            # One partition, marks ascending: the first record is the group's lowest and
            # the last its highest (every Kinesis group: no per-record step).
            if not seen or columns.mark(indices[0]) > seen.get(one, ""):
                fresh, duplicates = indices, 0
            else:
                low = seen[one]
                fresh = [i for i in indices if columns.mark(i) > low]
                duplicates = len(indices) - len(fresh)
            marks = dict(seen)
            if fresh:
                marks[one] = columns.mark(fresh[-1])
        else:
            fresh, marks = [], dict(seen)
            for i in indices:
                partition, mark = columns.partitions[i], columns.mark(i)
                if mark > seen.get(partition, ""):
                    fresh.append(i)
                    if mark > marks.get(partition, ""):
                        marks[partition] = mark
            duplicates = len(indices) - len(fresh)
        if batch.redriven and not batch.redriven.isdisjoint(fresh):
            fresh, skipped = redrive.skip_applied(batch, fresh, item)
            duplicates += skipped
        return fresh, duplicates, marks


class WindowState(Protocol):
    """Pane state (tumbling, sliding) or session state, as the ingest sees it."""

    def locate(self, key: str, time_ms: int) -> tuple[str, str]:
        """(PK, SK) of the item an event of `key` at `time_ms` updates."""
        ...

    def slots(self, times: list[int]) -> list[int]:
        """Each event time's slot: events of one key with equal slots update the same item
        (`item_of(key, slot)`), so the ingest groups a batch by (key, slot) and builds item
        keys once per group."""
        ...

    def item_of(self, key: str, slot: int) -> tuple[str, str]:
        """(PK, SK) of the item the events of `key` in `slot` update."""
        ...

    def judge(self, group: Group, item: dict[str, Any] | None, watermark: int) -> Verdict:
        """Merge the group's fresh records into `item` as it stands; late and duplicate
        records left out."""
        ...
