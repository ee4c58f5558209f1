"""Per-partition and pipeline watermarks.

A partition's watermark is `max event time seen - delay`. The pipeline's is the minimum over
partitions that are not idle (no records for `idle_timeout` of processing time); a known
partition that has produced nothing yet holds it back until it, too, counts as idle. The
pipeline watermark never moves back: its last value is stored and is a floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidegate.errors import ConditionFailedError
from tidegate.state import keys
from tidegate.state.store import StateStore

MIN_WATERMARK = -(2**62)  # "nothing seen": earlier than any signed window bound
MAX_WATERMARK = 2**62  # flush: every window closes


@dataclass(slots=True)
class PartitionMark:
    watermark: int
    max_event_ms: int
    last_seen_ms: int
    # Max event time of records applied by a batch that then failed part-way: it joins the
    # watermark when the retry completes, so the retry is judged as the first attempt was.
    pending_ms: int | None = None
    # The position mark this state version has written the partition through (`pos`).
    position: str | None = None
    # The highest event time of the last mini-batch flush (tidegate/mini_batch.py).
    flushed_top: int | None = None


@dataclass(slots=True)
class WatermarkState:
    partitions: dict[str, PartitionMark] = field(default_factory=dict)
    floor: int = MIN_WATERMARK  # the stored pipeline watermark

    def pipeline_watermark(
        self,
        now_ms: int,
        idle_timeout_ms: int,
        expected_partitions: list[str] | None = None,
        advance_when_idle: bool = True,
    ) -> int:
        marks = dict(self.partitions)
        first_seen = min((m.last_seen_ms for m in marks.values()), default=now_ms)
        for name in expected_partitions or ():
            # Silent since the pipeline's first record: held at "nothing seen" until idle.
            marks.setdefault(name, PartitionMark(MIN_WATERMARK, MIN_WATERMARK, first_seen))
        if not marks:
            return self.floor
        active = [m for m in marks.values() if now_ms - m.last_seen_ms < idle_timeout_ms]
        if active:
            computed = min(m.watermark for m in active)
        else:
            latest = max(marks.values(), key=lambda m: m.watermark)
            computed = latest.watermark
            if advance_when_idle and latest.watermark > MIN_WATERMARK:
                # Every partition idle: event time is taken to move with processing time,
                # so the windows of a stream that went quiet still close.
                computed += max(0, now_ms - max(m.last_seen_ms for m in marks.values()))
        return max(self.floor, computed)


class WatermarkStore:
    """Watermark items of one pipeline state version."""

    def __init__(self, store: StateStore, pipeline: str, version: int) -> None:
        self.store = store
        self.pk = keys.meta_pk(pipeline, version)

    def read(self) -> WatermarkState:
        state = WatermarkState()
        for item in self.store.query_partition(self.pk):
            sk = item["SK"]
            if sk == keys.PIPELINE_SK:
                state.floor = int(item.get("wm", MIN_WATERMARK))
            elif sk.startswith("WM#") and "last_seen" in item:  # not a position alone
                pending = item.get("pending")
                state.partitions[sk[3:]] = PartitionMark(
                    int(item.get("wm", MIN_WATERMARK)),
                    int(item.get("max_t", MIN_WATERMARK)),
                    int(item["last_seen"]),
                    None if pending is None else int(pending),
                    None if item.get("pos") is None else str(item["pos"]),
                    None if item.get("ftop") is None else int(item["ftop"]),
                )
        return state

    def advance_partition(
        self, partition: str, watermark: int, max_event_ms: int, now_ms: int,
        position: str | None = None,
    ) -> None:
        """After a batch completed. Monotone: a delayed or retried batch never moves a
        partition's watermark back. Clears the pending time the batch has now covered.
        `position` (a position mark) is the last record the batch completed: how far this
        state version has read the partition (a replay is caught up by it)."""
        sk = keys.watermark_sk(partition)
        try:
            self.store.advance_partition_watermark(
                self.pk, sk, watermark, max_event_ms, now_ms, position
            )
        except ConditionFailedError:
            self.touch_partition(partition, now_ms, clear_pending=True, position=position)

    def hold_partition(self, partition: str, max_event_ms: int, now_ms: int) -> None:
        """A batch failed part-way: remember what it applied, do not move the watermark."""
        try:
            self.store.hold_partition_watermark(
                self.pk, keys.watermark_sk(partition), max_event_ms, now_ms
            )
        except ConditionFailedError:
            self.touch_partition(partition, now_ms)

    def touch_partition(
        self, partition: str, now_ms: int, clear_pending: bool = False,
        position: str | None = None,
    ) -> None:
        """Records arrived (so the partition is not idle) but did not raise its watermark."""
        sk = keys.watermark_sk(partition)
        if position is not None:
            try:
                self.store.touch_partition(self.pk, sk, now_ms, clear_pending, position)
                return
            except ConditionFailedError:
                pass  # read further already: the liveness alone, below
        self.store.touch_partition(self.pk, sk, now_ms, clear_pending)

    def record_position(self, partition: str, position: str) -> None:
        try:
            self.store.record_position(self.pk, keys.watermark_sk(partition), position)
        except ConditionFailedError:
            pass  # read further already

    def positions(self) -> dict[str, str]:
        """Partition -> the position mark this state version has read up to."""
        return {
            item["SK"][3:]: str(item["pos"])
            for item in self.store.query_partition(self.pk)
            if item["SK"].startswith("WM#") and "pos" in item
        }

    def advance_pipeline(self, watermark: int) -> int:
        """Store the pipeline watermark; never lowers it. Returns the value now stored."""
        try:
            self.store.advance_pipeline_watermark(self.pk, keys.PIPELINE_SK, watermark)
        except ConditionFailedError as lost:
            # Another closer stored one at least as high: that one stands.
            if lost.current is not None:
                return int(lost.current.get("wm", watermark))
        return watermark


def describe(value: Any) -> str:
    if value <= MIN_WATERMARK:
        return "-inf"
    if value >= MAX_WATERMARK:
        return "+inf"
    return str(value)
