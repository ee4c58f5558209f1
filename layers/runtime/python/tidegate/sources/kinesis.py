"""Kinesis event-source-mapping events (as Lambda shapes them) -> SourceRecords."""

from __future__ import annotations

from typing import Any, TypedDict

from tidegate.sources.records import SourceRecord


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


def records_of(event: dict[str, Any]) -> list[SourceRecord]:
    # Runs for every record: positional arguments, in SourceRecord's field order.
    out: list[SourceRecord] = []
    append = out.append
    for rec in event.get("Records") or []:
        payload = rec["kinesis"]
        append(
            SourceRecord(
                rec["eventID"].rsplit(":", 1)[0],  # the shard id
                payload["sequenceNumber"],
                payload.get("data", ""),
                int(float(payload.get("approximateArrivalTimestamp", 0)) * 1000),
                payload.get("partitionKey"),
            )
        )
    return out


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
