"""Lambda event -> source records, whatever the event source (Kinesis; MSK and self-managed
Kafka), and the partial-failure response in the shape that source's mapping expects."""

from __future__ import annotations

from typing import Any

from tidegate.sources import kinesis, msk
from tidegate.sources.records import RecordBatch, SourceBatch, SourceRecord


def event_source(event: dict[str, Any]) -> str:
    if kinesis.is_kinesis_event(event):
        return "aws:kinesis"
    if msk.is_kafka_event(event):
        return str(event["eventSource"])
    return str(event.get("eventSource") or "unknown")


def records_of(event: dict[str, Any]) -> SourceBatch:
    if event.get("Records") == []:
        # A tumbling window's final invocation may carry no records (only its state).
        return RecordBatch([])
    source = event_source(event)
    if source == "aws:kinesis":
        return kinesis.records_of(event)
    if source in msk.KAFKA_SOURCES:
        return msk.records_of(event)
    raise ValueError(f"unsupported event source {source!r}")


def failure_response(event: dict[str, Any], failed: list[SourceRecord]) -> dict[str, Any]:
    # The two mappings read different identifiers: a Kinesis mapping would take a Kafka
    # {partition, offset} object as malformed and fail the whole batch, and vice versa.
    if event_source(event) in msk.KAFKA_SOURCES:
        return msk.failure_response(failed)
    return kinesis.failure_response(failed)
