"""MSK and self-managed Kafka events (hand-built, as Lambda shapes them) -> source records,
and the partial-failure response the Kafka event source mapping reads."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tidegate import sources
from tidegate.sources import msk
from tidegate.sources.records import SourceRecord


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kafka_record(topic: str, partition: int, offset: int, value: bytes = b"{}",
                 key: bytes | None = b"k", ts: int = 1_700_000_000_000,
                 ts_type: str = "CREATE_TIME") -> dict[str, Any]:
    record: dict[str, Any] = {
        "topic": topic, "partition": partition, "offset": offset,
        "timestamp": ts, "timestampType": ts_type,
        "value": b64(value),
        "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
    }
    if key is not None:
        record["key"] = b64(key)
    return record


def msk_event(*records: dict[str, Any], source: str = "aws:kafka") -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    event: dict[str, Any] = {"eventSource": source}
    if source == "aws:kafka":
        event["eventSourceArn"] = (
            "arn:aws:kafka:us-east-1:123456789012:cluster/demo/abcd1234-abcd-cafe-abab-98765-4"
        )
    event["bootstrapServers"] = "b-1.demo.kafka.us-east-1.amazonaws.com:9092"
    event["records"] = grouped
    return event


def test_the_aws_documentation_event_becomes_one_record() -> None:
    # GIVEN the example event of Lambda's MSK documentation
    event = {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/"
                          "751d2973-a626-431c-9d4e-d7975eb44dd7-2",
        "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
        "records": {"mytopic-0": [{
            "topic": "mytopic", "partition": 0, "offset": 15,
            "timestamp": 1545084650987, "timestampType": "CREATE_TIME",
            "key": "cmVjb3JkS2V5", "value": "eyJrZXkiOiJ2YWx1ZSJ9",
            "headers": [{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
        }]},
    }
    # THEN it is one record of partition `mytopic-0` at offset 15
    assert sources.event_source(event) == "aws:kafka"
    [record] = sources.records_of(event)
    assert record == SourceRecord(
        partition="mytopic-0", position="15", data_b64="eyJrZXkiOiJ2YWx1ZSJ9",
        arrival_ms=1545084650987, partition_key="recordKey",
        headers=[{"headerKey": [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101]}],
    )
    assert msk.headers_of(event["records"]["mytopic-0"][0]) == {"headerKey": b"headerValue"}


@pytest.mark.parametrize("ts_type", ["CREATE_TIME", "LOG_APPEND_TIME"])
def test_arrival_time_is_the_kafka_timestamp_of_either_type(ts_type: str) -> None:
    event = msk_event(kafka_record("t", 0, 1, ts=1_700_000_123_456, ts_type=ts_type))
    assert [r.arrival_ms for r in sources.records_of(event)] == [1_700_000_123_456]


def test_records_of_several_partitions_keep_their_partition_and_offset_order() -> None:
    event = msk_event(
        kafka_record("clicks", 0, 7), kafka_record("clicks", 0, 8),
        kafka_record("clicks", 1, 3), kafka_record("clicks", 10, 0),
        source="SelfManagedKafka",
    )
    records = sources.records_of(event)
    assert sources.event_source(event) == "SelfManagedKafka"
    assert [(r.partition, r.position) for r in records] == [
        ("clicks-0", "7"), ("clicks-0", "8"), ("clicks-1", "3"), ("clicks-10", "0"),
    ]
    # Marks order numerically (offset 10 after 9), whatever the digit count.
    assert SourceRecord("p", "10", "", 0).mark > SourceRecord("p", "9", "", 0).mark


def test_a_topic_name_with_dashes_keeps_its_full_name() -> None:
    [record] = sources.records_of(msk_event(kafka_record("user-events-v2", 3, 42)))
    assert record.partition == "user-events-v2-3"


def test_missing_key_a_binary_key_and_a_tombstone_are_carried_not_fatal() -> None:
    event = msk_event(
        kafka_record("t", 0, 0, key=None),
        kafka_record("t", 0, 1, key=b"\xff\xfeid"),
        {**kafka_record("t", 0, 2), "value": None},
    )
    no_key, binary_key, tombstone = sources.records_of(event)
    assert no_key.partition_key is None
    assert binary_key.partition_key == "\\xff\\xfeid"
    assert tombstone.data_b64 == ""  # decodes to no bytes: dead-lettered as invalid JSON


def test_no_failures_is_an_empty_list() -> None:
    event = msk_event(kafka_record("t", 0, 1))
    assert sources.failure_response(event, []) == {"batchItemFailures": []}


def test_one_identifier_per_failed_partition_at_its_lowest_offset() -> None:
    # GIVEN failures at offsets 12 and 9 of t-0, and 40 of t-1 (offsets as the mapping sent)
    event = msk_event(*(kafka_record("t", 0, o) for o in range(8, 13)), kafka_record("t", 1, 40))
    records = sources.records_of(event)
    failed = [r for r in records if (r.partition, r.position) in
              {("t-0", "12"), ("t-0", "9"), ("t-1", "40")}]
    # THEN each partition resumes at its lowest failure; offsets are integers
    assert sources.failure_response(event, failed) == {"batchItemFailures": [
        {"itemIdentifier": {"partition": "t-0", "offset": 9}},
        {"itemIdentifier": {"partition": "t-1", "offset": 40}},
    ]}


def test_kinesis_events_keep_the_kinesis_failure_shape() -> None:
    from tests.support import kinesis_event, seq

    event = kinesis_event([(seq(1), b"{}"), (seq(2), b"{}")], "arn:aws:kinesis:::stream/s")
    records = sources.records_of(event)
    assert sources.failure_response(event, records) == {
        "batchItemFailures": [{"itemIdentifier": seq(1)}]
    }


def test_an_unknown_event_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported event source"):
        sources.records_of({"eventSource": "aws:sqs", "Records": [{"eventSource": "aws:sqs"}]})
