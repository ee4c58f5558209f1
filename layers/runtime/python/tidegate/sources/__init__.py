"""Lambda event -> source records, whatever the event source (Kinesis; MSK and self-managed
Kafka), and the partial-failure response in the shape that source's mapping expects."""

from __future__ import annotations

from typing import Any

from tidegate.sources import kinesis
from tidegate.sources.records import SourceRecord


def event_source(event: dict[str, Any]) -> str:
    if kinesis.is_kinesis_event(event):
        return "aws:kinesis"
    return str(event.get("eventSource") or "unknown")


def records_of(event: dict[str, Any]) -> list[SourceRecord]:
    source = event_source(event)
    if source == "aws:kinesis":
        return kinesis.records_of(event)
    raise ValueError(f"unsupported event source {source!r}")


def failure_response(event: dict[str, Any], failed: list[SourceRecord]) -> dict[str, Any]:
    return kinesis.failure_response(failed)
