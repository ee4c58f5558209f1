"""The cut-over of a replay, shared by local and deployed `tidegate replay`: how far each
state version has read each partition, whether the replay has caught up, and the
expiry of a superseded version's state.

Caught up: for every partition, the replay's read position has reached the position the
live version had read when the check was made (both are recorded on the versions'
watermark items by every completed batch), or the replay has read the partition to its
tip. A partition the live version never read needs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tidegate.state import keys
from tidegate.state.store import StateStore
from tidegate.watermark import WatermarkStore


@dataclass(frozen=True)
class PartitionProgress:
    partition: str
    replay: str | None  # position marks (fixed-width digit strings)
    live: str | None
    at_tip: bool = False

    @property
    def caught_up(self) -> bool:
        if self.at_tip or self.live is None:
            return True
        return self.replay is not None and self.replay >= self.live


def progress(
    store: StateStore,
    pipeline: str,
    live_version: int,
    replay_version: int,
    partitions: Iterable[str] = (),
    at_tip: Iterable[str] = (),
) -> list[PartitionProgress]:
    live = WatermarkStore(store, pipeline, live_version).positions()
    replay = WatermarkStore(store, pipeline, replay_version).positions()
    tips = set(at_tip)
    names = sorted(set(partitions) | set(live) | set(replay))
    return [PartitionProgress(p, replay.get(p), live.get(p), p in tips) for p in names]


def caught_up(rows: list[PartitionProgress]) -> bool:
    return all(row.caught_up for row in rows)


def short_position(mark: str | None) -> str:
    return "-" if mark is None else str(int(mark))


def expire_version(store: StateStore, pipeline: str, version: int, expire_at_s: int) -> int:
    """Give every item of a superseded state version a TTL (`expire_at`, epoch seconds);
    an item that already expires sooner keeps its time. Returns how many items were set.
    A Scan: run once per switch by the operator, never on the ingest path."""
    return store.expire_items(
        keys.key_pk(pipeline, version, ""), keys.meta_pk(pipeline, version), expire_at_s
    )
