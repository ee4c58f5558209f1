"""A source record, whatever the log it came from, and a batch of them as columns."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import overload

from tidegate.state.keys import POSITION_WIDTH, position_mark

# Kafka record headers as Lambda gives them: [{name: [byte, ...]}].
Headers = list[dict[str, list[int]]]


@dataclass(slots=True)
class SourceRecord:
    partition: str  # Kinesis shard id, or Kafka `topic-partition`
    position: str  # sequence number or offset, as the event source gave it
    data_b64: str
    arrival_ms: int
    partition_key: str | None = None
    # A redriven dead letter's id and original coordinates (tidegate/redrive.py).
    redrive_id: str | None = None
    redrive_of: dict[str, object] | None = None
    # None when there are none (always for Kinesis), so the decoder's plain path stays the
    # only path.
    headers: Headers | None = None
    # The position as a fixed-width string whose order is the numeric order; compared
    # against high-water marks several times a record, so computed once.
    mark: str = field(init=False)

    def __post_init__(self) -> None:
        self.mark = position_mark(self.position)

    def coordinates(self) -> dict[str, object]:
        return {
            "partition": self.partition,
            "position": self.position,
            "partition_key": self.partition_key,
            "arrival_ms": self.arrival_ms,
        }


@dataclass(frozen=True, slots=True)
class Columns:
    """What the ingest reads of every record of a batch, one list per attribute: the decoder
    and the ingest loop over these, and build a `SourceRecord` only for a record they must
    name (a dead letter, a late or failed record, a redriven one)."""

    data: list[str]  # base64 payloads
    partitions: list[str]
    # Each record's position, in an order that is the numeric order across the batch (a
    # record's `mark` is `.zfill(POSITION_WIDTH)` of its entry).
    marks: list[str]
    first_arrival_ms: int  # the lowest record's `arrival_ms`
    headers: list[Headers | None] | None = None  # None: no record has headers
    # The one partition of every record when their marks strictly ascend in batch order
    # (every Kinesis batch): a group's lowest and highest marks are its first and last.
    partition: str | None = None

    @classmethod
    def of(cls, records: Sequence[SourceRecord]) -> Columns:
        marks = [r.mark for r in records]
        partitions = [r.partition for r in records]
        headers = [r.headers for r in records]
        one = partitions[0] if partitions and partitions.count(partitions[0]) == len(
            partitions) else None
        ascending = all(a < b for a, b in pairwise(marks))
        return cls(
            data=[r.data_b64 for r in records],
            partitions=partitions,
            marks=marks,
            first_arrival_ms=min((r.arrival_ms for r in records), default=0),
            headers=headers if any(h is not None for h in headers) else None,
            partition=one if ascending else None,
        )

    def mark(self, index: int) -> str:
        return self.marks[index].zfill(POSITION_WIDTH)


class SourceBatch(Sequence[SourceRecord]):
    """One Lambda event's records, whatever the source: a sequence of `SourceRecord`s that
    are built when first asked for (then kept, so a record is one object however it is
    reached), and the same batch as `columns()`."""

    __slots__ = ("_built", "_whole")

    def __init__(self, size: int) -> None:
        self._built: list[SourceRecord | None] = [None] * size
        self._whole = False  # every record built

    def _build(self, index: int) -> SourceRecord:
        raise NotImplementedError

    def columns(self) -> Columns:
        return Columns.of(self)

    def __len__(self) -> int:
        return len(self._built)

    @overload
    def __getitem__(self, index: int) -> SourceRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[SourceRecord]: ...

    def __getitem__(self, index: int | slice) -> SourceRecord | list[SourceRecord]:
        if isinstance(index, slice):
            return [self.record(i) for i in range(len(self))[index]]
        return self.record(range(len(self))[index])  # IndexError as a list's

    def __iter__(self) -> Iterator[SourceRecord]:
        built = self._built
        if not self._whole:
            built[:] = [r if r is not None else self._build(i) for i, r in enumerate(built)]
            self._whole = True
        return iter(built)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SourceBatch | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable like the list it stands for

    def __repr__(self) -> str:
        return f"{type(self).__name__}({list(self)!r})"

    def record(self, index: int) -> SourceRecord:
        built = self._built[index]
        if built is None:
            built = self._built[index] = self._build(index)
        return built


class RecordBatch(SourceBatch):
    """Records already built (Kafka's, or any list of them)."""

    __slots__ = ()

    def __init__(self, records: Sequence[SourceRecord]) -> None:
        super().__init__(len(records))
        self._built[:] = records
        self._whole = True


def batch_of(records: Sequence[SourceRecord]) -> SourceBatch:
    return records if isinstance(records, SourceBatch) else RecordBatch(records)
