"""Kinesis event-source-mapping events (as Lambda shapes them) -> SourceRecords."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, TypedDict, overload

from tidegate.sources.records import SourceRecord
from tidegate.state.keys import POSITION_WIDTH


class KinesisPayload(TypedDict):
    kinesisSchemaVersion: str
    partitionKey: str
    sequenceNumber: str
    data: str
    approximateArrivalTimestamp: float


class KinesisEventRecord(TypedDict):
    kinesis: KinesisPayload
    eventSource: str
    eventVersion: str
    eventID: str  # "shardId-000000000000:4954..."
    eventName: str
    invokeIdentityArn: str
    awsRegion: str
    eventSourceARN: str


def is_kinesis_event(event: dict[str, Any]) -> bool:
    records = event.get("Records") or []
    return bool(records) and records[0].get("eventSource") == "aws:kinesis"


def records_of(event: dict[str, Any]) -> KinesisBatch:
    return KinesisBatch(event.get("Records") or [])


def _source_record(rec: KinesisEventRecord) -> SourceRecord:
    payload = rec["kinesis"]
    # Positional arguments, in SourceRecord's field order.
    return SourceRecord(
        rec["eventID"].rsplit(":", 1)[0],  # the shard id
        payload["sequenceNumber"],
        payload.get("data", ""),
        int(float(payload.get("approximateArrivalTimestamp", 0)) * 1000),
        payload.get("partitionKey"),
    )


_KINESIS = itemgetter("kinesis")
_SEQUENCE = itemgetter("sequenceNumber")
_EVENT_ID = itemgetter("eventID")
_ARRIVAL = itemgetter("approximateArrivalTimestamp")
_DATA = itemgetter("data")


@dataclass(frozen=True, slots=True)
class Columns:
    """What the ingest reads of every record of a batch from one shard whose sequence numbers
    are ASCII digit strings that strictly ascend (every Kinesis batch)."""

    shard: str
    data: list[str]
    # Each record's position, zero-padded when the batch's are of different widths: they
    # order as the numbers do, and each one's `position_mark` is `.zfill(POSITION_WIDTH)`.
    marks: list[str]
    first_arrival_ms: int  # the lowest record's `arrival_ms`


class KinesisBatch(Sequence[SourceRecord]):
    """A Kinesis event's records, each built when first asked for (and then kept, so a record
    is one object however it is reached). The ingest reads the batch as `columns()` and builds
    only the records it must name: dead letters, late and failed records."""

    __slots__ = ("_built", "_raw", "_whole")

    def __init__(self, raw: list[KinesisEventRecord]) -> None:
        self._raw = raw
        self._built: list[SourceRecord | None] = [None] * len(raw)
        self._whole = False  # every record built

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, index: int) -> SourceRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[SourceRecord]: ...

    def __getitem__(self, index: int | slice) -> SourceRecord | list[SourceRecord]:
        if isinstance(index, slice):
            return [self.record(i) for i in range(len(self._raw))[index]]
        return self.record(range(len(self._raw))[index])  # IndexError as a list's

    def __iter__(self) -> Iterator[SourceRecord]:
        # Iterating reads every record (the record-by-record ingest): build the missing ones
        # in one pass.
        built = self._built
        if not self._whole:
            built[:] = [
                record if record is not None else _source_record(raw)
                for record, raw in zip(built, self._raw, strict=True)
            ]
            self._whole = True
        return iter(built)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KinesisBatch | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable like the list it stands for

    def __repr__(self) -> str:
        return f"KinesisBatch({list(self)!r})"

    def record(self, index: int) -> SourceRecord:
        built = self._built[index]
        if built is None:
            built = self._built[index] = _source_record(self._raw[index])
        return built

    def columns(self) -> Columns | None:
        """The batch as columns, or None when it is not the common case `Columns` describes
        (then the ingest takes each record as it comes)."""
        raw = self._raw
        if not raw:
            return None
        # Read with map(itemgetter): no interpreted step per record. A record without one of
        # these fields (KeyError) goes the general way, which words what is missing.
        try:
            payloads = list(map(_KINESIS, raw))
            positions = list(map(_SEQUENCE, payloads))
            digits = "".join(positions)  # TypeError unless all are strings
            ids = list(map(_EVENT_ID, raw))
            arrivals = list(map(float, map(_ARRIVAL, payloads)))
            data = list(map(_DATA, payloads))
            # One shard: every record's `rsplit(":", 1)[0]` is the first one's, i.e. each id
            # is that shard, a colon and no other colon. Counted over the ids joined by NULs
            # (none in any id): `prefix` after each NUL and no colons beyond the prefixes'.
            shard = ids[0].rsplit(":", 1)[0]
            prefix = shard + ":"
            joined = "\0" + "\0".join(ids)
            count = len(ids)
            one_shard = (
                joined.count("\0") == count
                and joined.count("\0" + prefix) == count
                and joined.count(":") == count * prefix.count(":")
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        # ASCII digits only (bytes.isdigit: str.isdigit's answer for ASCII, many times faster).
        if not (one_shard and digits.isascii() and digits.encode("ascii").isdigit()
                and math.isfinite(sum(arrivals))):  # (each record's arrival_ms is an int)
            return None
        widths = set(map(len, positions))
        if 0 in widths or max(widths) > POSITION_WIDTH:
            return None
        marks = positions if len(widths) == 1 else [p.zfill(POSITION_WIDTH) for p in positions]
        if marks != sorted(marks) or len(set(marks)) != len(marks):  # strictly ascending
            return None
        # int(x * 1000) never decreases as x grows: the lowest arrival gives the least.
        return Columns(shard, data, marks, int(min(arrivals) * 1000))


def stream_of(event: dict[str, Any]) -> str | None:
    records = event.get("Records") or []
    return records[0].get("eventSourceARN") if records else None


def failure_response(failed: list[SourceRecord]) -> dict[str, list[dict[str, str]]]:
    """ReportBatchItemFailures: Lambda resumes from the lowest reported sequence number
    (and retries everything after it), so reporting the lowest failure is enough."""
    if not failed:
        return {"batchItemFailures": []}
    lowest = min(failed, key=lambda r: r.mark)
    return {"batchItemFailures": [{"itemIdentifier": lowest.position}]}
