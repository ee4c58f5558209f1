"""Kinesis event-source-mapping events (as Lambda shapes them) -> SourceRecords."""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Any, TypedDict

from tidegate.sources.records import Columns, SourceBatch, SourceRecord
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


class KinesisBatch(SourceBatch):
    """A Kinesis event's records. The ingest reads the batch as `columns()` and builds only
    the records it must name: dead letters, late and failed records."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[KinesisEventRecord]) -> None:
        super().__init__(len(raw))
        self._raw = raw

    def _build(self, index: int) -> SourceRecord:
        return _source_record(self._raw[index])

    def columns(self) -> Columns:
        """The batch as columns: read straight from the event in the common case (one shard,
        ASCII digit sequence numbers that strictly ascend: every Kinesis batch), else from
        the records."""
        return self._common_columns() or Columns.of(self)

    def _common_columns(self) -> Columns | None:
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
        return Columns(data, [shard] * count, marks, int(min(arrivals) * 1000), partition=shard)


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
