"""What the ingest asks of a window kind's state: where an event goes, and what to write."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tidegate.schemas.decode import Event
from tidegate.sources.records import SourceRecord

Member = tuple[SourceRecord, Event]


@dataclass
class Verdict:
    item: dict[str, Any] | None  # the item to write, None when nothing to write
    expected_version: int | None  # None: the item must not exist yet
    applied: list[SourceRecord]
    late: list[Member]
    duplicates: int


class WindowState(Protocol):
    """Pane state (tumbling, sliding) or session state, as the ingest sees it."""

    def locate(self, key: str, time_ms: int) -> tuple[str, str]:
        """(PK, SK) of the item an event of `key` at `time_ms` updates."""
        ...

    def slot(self, time_ms: int) -> int:
        """Events of one key with equal slots update the same item (the same `locate`):
        lets the ingest group a batch by (key, slot) and build keys once per group."""
        ...

    def judge(
        self, key: str, sk: str, members: list[Member], item: dict[str, Any] | None,
        watermark: int,
    ) -> Verdict:
        """Merge the group into `item` as it stands; late and duplicate records left out."""
        ...


def split_duplicates(
    members: list[Member], item: dict[str, Any] | None
) -> tuple[list[Member], int, dict[str, str]]:
    """Records at or below the item's high-water mark of their partition were applied before.

    Returns the fresh members, the duplicate count, and the marks raised by the fresh ones.
    """
    if not item:
        # A new item (every group's case in a batch of new panes): nothing to skip.
        marks: dict[str, str] = {}
        for record, _ in members:
            if record.mark > marks.get(record.partition, ""):
                marks[record.partition] = record.mark
        return list(members), 0, marks
    marks = dict(item.get("hw", {}))
    fresh: list[Member] = []
    duplicates = 0
    for record, event in members:
        if record.mark <= marks.get(record.partition, ""):
            duplicates += 1
        else:
            fresh.append((record, event))
    for record, _ in fresh:
        if record.mark > marks.get(record.partition, ""):
            marks[record.partition] = record.mark
    return fresh, duplicates, marks
