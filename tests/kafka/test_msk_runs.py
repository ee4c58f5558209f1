"""End to end through librdkafka's mock cluster: results do not depend on the source
(Kinesis or MSK) nor on the format (JSON or Avro in the Glue wire format) — CONTRACT.md.

One mock cluster serves the whole process (tidegate_dev.local.kafka); every run gets its own
topic, as it gets its own resources on the session's moto server.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.test_local_runs import OUT_OF_ORDER, OUT_OF_ORDER_RESULTS
from tests.support import BASE_MS as B
from tests.support import (
    FaultOnce,
    aggregates_of,
    assert_accounting,
    assert_same_typed,
    deployed,
    line,
    mentions,
)
from tidegate.spec import Pipeline
from tidegate_dev.local import kafka
from tidegate_dev.local.producer import partition_key
from tidegate_dev.local.runner import RunOutput, run_pipeline

SOURCES = {
    "kinesis": {"type": "kinesis", "stream": "tg-events"},
    "msk": {"type": "msk", "topic": "tg-events"},
}
# The out-of-order events of the Kinesis runs, then one of each kind of trouble:
MIXED = [
    *OUT_OF_ORDER,
    b"{oops",  # invalid JSON
    line("u1", B - 60_000, 1),  # late: every window of it is final by then
    b'{"user": "u9", "ts": 5, "v": true}',  # schema violation (a boolean is not a number)
    b'{"user": "u2", "v": 1}',  # invalid timestamp (none)
]
MIXED_SUMMARY = {
    "events_in": 17, "aggregated": 13, "late": 1, "dead_lettered": 3,
    "duplicates_skipped": 0, "results": 6,
}


def _run(make_pipeline: Callable[..., Pipeline], url: str, source: str, fmt: str,
         lines: list[bytes], **kwargs: Any) -> RunOutput:
    pipeline = make_pipeline(source=SOURCES[source], format=fmt, watermark={"delay": "5s"})
    return run_pipeline(pipeline, lines, endpoint_url=url, **kwargs)


def _comparable(results: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in results)


def test_kinesis_msk_json_and_avro_give_identical_results_and_summaries(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    # GIVEN out-of-order, late and malformed events, one at a time per batch of 3
    runs = {
        (source, fmt): _run(make_pipeline, moto_url, source, fmt, MIXED, batch_size=3)
        for source in SOURCES for fmt in ("json", "avro")
    }
    baseline = runs[("kinesis", "json")]
    # THEN the Kinesis JSON run has the hand-computed results of the Kinesis tests
    assert_same_typed(aggregates_of(baseline.results), OUT_OF_ORDER_RESULTS)
    for (source, fmt), out in runs.items():
        # AND every combination publishes the very same results, idempotency keys included
        assert _comparable(out.results) == _comparable(baseline.results), (source, fmt)
        assert out.summary == MIXED_SUMMARY, (source, fmt)
        assert_accounting(out.summary)
        assert len(out.late) == 1 and out.late[0]["event_time_ms"] == B - 60_000
    # AND the dead letters carry the source's coordinates (Kafka: topic-partition, offset)
    msk_dead = runs[("msk", "json")].dead_letters
    assert sorted(d["reason"] for d in msk_dead) == [
        "invalid_json", "invalid_timestamp", "schema_violation"
    ]
    assert {d["source"]["partition"].rsplit("-", 1)[1] for d in msk_dead} == {"0"}
    assert sorted(int(d["source"]["position"]) for d in msk_dead) == [13, 15, 16]
    # AND an Avro run dead-letters the lines no producer could encode, as their raw bytes
    assert {d["reason"] for d in runs[("msk", "avro")].dead_letters} == {"invalid_avro"}


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_two_partitions_per_event_semantics_match_kinesis_with_one_shard(
    moto_url: str, make_pipeline: Callable[..., Pipeline], fmt: str
) -> None:
    # GIVEN the events whose windows stay open within the delay, on two partitions
    out = _run(make_pipeline, moto_url, "msk", fmt, OUT_OF_ORDER, shards=2, batch_size=2)
    # THEN (nothing late whatever the interleaving) the aggregates are the one-shard ones
    assert_same_typed(aggregates_of(out.results), OUT_OF_ORDER_RESULTS)
    assert out.summary["aggregated"] == len(OUT_OF_ORDER)
    assert_accounting(out.summary)


def test_the_kafka_mapping_retries_a_partial_failure_to_the_same_aggregates(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    """test_exactly_once's Kinesis story, through the Kafka mapping and the mock broker."""
    pipeline = make_pipeline(
        source=SOURCES["msk"], aggregates={"n": {"op": "count"},
                                           "total": {"op": "sum", "field": "v"}},
    )
    lines = [
        line("a", B + 1_000, 1),
        line("b", B + 2_000, 10),
        line("a", B + 3_000, 100),
        line("c", B + 4_000, 1_000),
        line("b", B + 5_000, 10_000),
        line("a", B + 6_000, 100_000),
    ]
    responses: list[Any] = []
    with deployed(pipeline, moto_url) as env:
        # GIVEN the first write of key b's pane fails once
        fault = FaultOnce("dynamodb", lambda op, params: (
            op in ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem")
            and mentions(params, '#["b"]') and mentions(params, "P#")
        ))

        def handler(event: dict[str, Any], context: Any) -> Any:
            responses.append(env.ingest.handler(event, context))
            return responses[-1]

        # WHEN the six records go through one partition in one batch
        esm = kafka.open_topic_feed("tg-events", 1, [partition_key(pipeline, x) for x in lines],
                                    lines, handler, batch_size=100)
        while esm.pending():
            esm.deliver_round()
        env.close(flush=True)
        totals = env.totals()
        out = env.collect(events_in=len(lines))

    # THEN the handler named the partition and the lowest failed offset (the second record)
    partition = esm.partitions[0].name
    assert responses[0] == {
        "batchItemFailures": [{"itemIdentifier": {"partition": partition, "offset": 1}}]
    }
    assert responses[1] == {"batchItemFailures": []}
    assert fault.fired == 1
    # AND the mapping resumed there, redelivering the records after it that had succeeded
    assert (esm.stats.retries, esm.stats.invocations) == (1, 2)
    assert esm.stats.records_delivered == 6 + 5
    assert totals["duplicates_skipped"] == 3
    # AND the aggregates are exactly those of one clean delivery
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 3, "total": 100_101.0},
        ("b", B): {"n": 2, "total": 10_010.0},
        ("c", B): {"n": 1, "total": 1_000.0},
    })
    assert out.summary == {"events_in": 6, "aggregated": 6, "late": 0, "dead_lettered": 0}


def test_the_mapping_shapes_events_as_lambda_does(moto_url: str) -> None:
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"batchItemFailures": []}

    esm = kafka.open_topic_feed("shape", 2, ["k1", "k2", "k1"], [b"a", b"b", b"c"], handler,
                                batch_size=10)
    while esm.pending():
        esm.deliver_round()
    assert sum(len(r) for e in seen for r in e["records"].values()) == 3
    for event in seen:
        assert set(event) == {"eventSource", "eventSourceArn", "bootstrapServers", "records"}
        assert event["eventSource"] == "aws:kafka"
        assert event["eventSourceArn"].startswith("arn:aws:kafka:us-east-1:123456789012:cluster/")
        [(group, records)] = event["records"].items()
        for offset, record in enumerate(records):
            assert group == f"{record['topic']}-{record['partition']}"
            assert record["offset"] == offset
            assert record["timestampType"] == "CREATE_TIME"
            assert isinstance(record["timestamp"], int)
            assert set(record) == {"topic", "partition", "offset", "timestamp",
                                   "timestampType", "key", "value", "headers"}
    # Records of one key share a partition, in production order.
    by_key: dict[str, list[tuple[str, str]]] = {}
    for event in seen:
        for group, records in event["records"].items():
            for record in records:
                by_key.setdefault(record["key"], []).append((group, record["value"]))
    k1 = by_key[base64.b64encode(b"k1").decode()]
    assert len({group for group, _ in k1}) == 1
    assert [value for _, value in k1] == [base64.b64encode(v).decode() for v in (b"a", b"c")]
