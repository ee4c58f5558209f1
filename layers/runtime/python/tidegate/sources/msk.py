"""Kafka event-source-mapping events (Amazon MSK `aws:kafka`, self-managed `SelfManagedKafka`),
as Lambda shapes them -> SourceRecords, and the Kafka partial-failure response.

Positions are offsets, numbered per topic-partition, so the partition a record's marks and
watermark belong to is `<topic>-<partition>` — the key Lambda groups the records under.

Arrival time is the record's Kafka timestamp, whatever its `timestampType`: with
LOG_APPEND_TIME it is when the broker appended the record (Kinesis' arrival time); with
CREATE_TIME (the default) it is the producer's clock, which is the best arrival time a Kafka
consumer gets. It only bounds `max_future_skew`, so a producer whose clock runs ahead can make
its own future events look less suspicious; topics that need the guard tight should use
`message.timestamp.type=LogAppendTime`.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any, TypedDict

from tidegate.sources.records import RecordBatch, SourceRecord

KAFKA_SOURCES = ("aws:kafka", "SelfManagedKafka")


class KafkaEventRecord(TypedDict):
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestampType: str  # CREATE_TIME | LOG_APPEND_TIME
    key: str | None  # base64
    value: str | None  # base64
    headers: list[dict[str, list[int]]]


class KafkaItemIdentifier(TypedDict):
    partition: str  # "<topic>-<partition>"
    offset: int


def is_kafka_event(event: dict[str, Any]) -> bool:
    return event.get("eventSource") in KAFKA_SOURCES and isinstance(event.get("records"), dict)


def _key_text(key_b64: str | None) -> str | None:
    if key_b64 is None:
        return None
    try:
        raw = b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        return key_b64  # keep what Lambda gave; the key is informational (coordinates)
    # Keys are bytes in Kafka; a non-UTF-8 key must still be reportable in a dead letter.
    return raw.decode("utf-8", errors="backslashreplace")


def records_of(event: dict[str, Any]) -> RecordBatch:
    out: list[SourceRecord] = []
    for group, records in (event.get("records") or {}).items():
        for rec in records:
            topic = rec.get("topic")
            number = rec.get("partition")
            partition = f"{topic}-{number}" if topic is not None and number is not None else group
            out.append(
                SourceRecord(
                    partition=partition,
                    position=str(int(rec["offset"])),
                    # A tombstone (null value) decodes to no bytes and is dead-lettered.
                    data_b64=rec.get("value") or "",
                    arrival_ms=int(rec.get("timestamp") or 0),
                    partition_key=_key_text(rec.get("key")),
                    headers=rec.get("headers") or None,
                )
            )
    return RecordBatch(out)


def headers_of(record: KafkaEventRecord) -> dict[str, bytes]:
    """Record headers as bytes; Lambda gives each value as a list of byte values (Java's
    signed bytes may show as negative numbers, hence the mask)."""
    out: dict[str, bytes] = {}
    for header in record.get("headers") or []:
        for name, values in header.items():
            out[name] = bytes(v & 0xFF for v in values)
    return out


def failure_response(
    failed: list[SourceRecord],
) -> dict[str, list[dict[str, KafkaItemIdentifier]]]:
    """Kafka's ReportBatchItemFailures: one identifier per failed topic-partition, at its
    LOWEST failed offset. Lambda resumes each partition there and redelivers everything
    after it, so a later failure of the same partition needs no identifier of its own."""
    lowest: dict[str, SourceRecord] = {}
    for record in failed:
        seen = lowest.get(record.partition)
        if seen is None or record.mark < seen.mark:
            lowest[record.partition] = record
    return {
        "batchItemFailures": [
            {"itemIdentifier": {"partition": partition, "offset": int(record.position)}}
            for partition, record in sorted(lowest.items())
        ]
    }
