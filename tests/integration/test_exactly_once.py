"""Exactly-once effect under at-least-once delivery, driving the handlers directly.

The ingest handler gets hand-built Kinesis events (as AWS shapes them) and the retries AWS
would make: the same batch again, or the batch again from the LOWEST reported sequence
number. Whatever the delivery, the aggregates are those of one clean delivery.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import BASE_MS as B
from tests.support import (
    SHARD0,
    FaultOnce,
    aggregates_of,
    assert_accounting,
    assert_same_typed,
    deployed,
    line,
    mentions,
    seq,
)
from tidegate.spec import Pipeline
from tidegate_dev.local.esm import KinesisEventSourceMapping
from tidegate_dev.local.runner import put_events

S = 10_000
COUNT_AND_SUM = {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}}


@pytest.fixture
def pipeline(make_pipeline: Callable[..., Pipeline]) -> Pipeline:
    return make_pipeline(aggregates=COUNT_AND_SUM)


def test_a_batch_delivered_twice_counts_once(moto_url: str, pipeline: Pipeline) -> None:
    # GIVEN a batch of two keys across two windows, with one poison record
    batch = [
        (seq(1), line("a", B + 1_000, 1)),
        (seq(2), line("b", B + 2_000, 2)),
        (seq(3), line("a", B + 3_000, 3)),
        (seq(4), b"{oops"),
        (seq(5), line("a", B + 12_000, 4)),  # watermark 10000: window 0 becomes final
        (seq(6), line("b", B + 11_000, 5)),
    ]
    with deployed(pipeline, moto_url) as env:
        # WHEN it is delivered, the closer runs (closing window 0), and it is delivered again
        first = env.deliver(batch)
        closed = env.close()
        second = env.deliver(batch)
        env.close(flush=True)
        totals = env.totals()
        out = env.collect(events_in=len(batch))

    # THEN both deliveries succeed, the second skips every aggregated record as a duplicate
    assert first == second == {"batchItemFailures": []}
    assert closed["windows_closed"] == 2
    assert totals["aggregated"] == 5
    assert totals["duplicates_skipped"] == 5
    # AND the aggregates are exactly those of one clean delivery
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 2, "total": 4.0},
        ("b", B): {"n": 1, "total": 2.0},
        ("a", B + S): {"n": 1, "total": 4.0},
        ("b", B + S): {"n": 1, "total": 5.0},
    })
    assert len(out.results) == 4
    assert out.summary == {"events_in": 6, "aggregated": 5, "late": 0, "dead_lettered": 1}
    assert_accounting(out.summary)


def test_a_batch_that_fails_half_way_is_retried_from_the_lowest_reported_sequence_number(
    moto_url: str, pipeline: Pipeline
) -> None:
    # GIVEN a batch whose group for key b (records 2 and 5) fails to write the first time
    batch = [
        (seq(1), line("a", B + 1_000, 1)),
        (seq(2), line("b", B + 2_000, 10)),
        (seq(3), line("a", B + 3_000, 100)),
        (seq(4), line("c", B + 4_000, 1_000)),
        (seq(5), line("b", B + 5_000, 10_000)),
        (seq(6), line("a", B + 6_000, 100_000)),
    ]
    with deployed(pipeline, moto_url) as env:
        fault = FaultOnce("dynamodb", lambda op, params: (
            op in ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem")
            and mentions(params, '#["b"]') and mentions(params, "P#")
        ))

        # WHEN it is delivered
        first = env.deliver(batch)
        # THEN the lowest failed sequence number is reported, exactly as it was given
        assert fault.fired == 1
        assert first == {"batchItemFailures": [{"itemIdentifier": seq(2)}]}

        # WHEN Lambda retries from that record, including records 3, 4, 6 that succeeded
        retry = env.deliver([r for r in batch if r[0] >= seq(2)])
        env.close(flush=True)
        totals = env.totals()
        out = env.collect(events_in=len(batch))

    # THEN the retry succeeds and skips the three records already applied
    assert retry == {"batchItemFailures": []}
    assert totals["duplicates_skipped"] == 3
    assert totals["aggregated"] == 6
    # AND the aggregates are those of one clean delivery (each value's digit names its record)
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 3, "total": 100_101.0},
        ("b", B): {"n": 2, "total": 10_010.0},
        ("c", B): {"n": 1, "total": 1_000.0},
    })
    assert out.summary == {"events_in": 6, "aggregated": 6, "late": 0, "dead_lettered": 0}
    assert_accounting(out.summary)


def test_the_event_source_mapping_retries_a_partial_failure_to_the_same_aggregates(
    moto_url: str, pipeline: Pipeline
) -> None:
    """The same story through the local event-source-mapping emulator and a real stream."""
    lines = [
        line("a", B + 1_000, 1),
        line("b", B + 2_000, 10),
        line("a", B + 3_000, 100),
        line("c", B + 4_000, 1_000),
        line("b", B + 5_000, 10_000),
        line("a", B + 6_000, 100_000),
    ]
    with deployed(pipeline, moto_url) as env:
        fault = FaultOnce("dynamodb", lambda op, params: (
            op in ("PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem")
            and mentions(params, '#["b"]') and mentions(params, "P#")
        ))
        put_events(env.deployment.source_stream, pipeline, lines)
        esm = KinesisEventSourceMapping(env.deployment.source_stream, env.ingest.handler,
                                        batch_size=100)
        while esm.pending():
            esm.deliver_round()
        env.close(flush=True)
        totals = env.totals()
        out = env.collect(events_in=len(lines))

    assert fault.fired == 1
    assert esm.stats.retries == 1
    assert esm.stats.invocations == 2
    assert esm.stats.records_delivered == 6 + 5  # the retry starts at the second record
    assert totals["duplicates_skipped"] == 3
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 3, "total": 100_101.0},
        ("b", B): {"n": 2, "total": 10_010.0},
        ("c", B): {"n": 1, "total": 1_000.0},
    })
    assert out.summary == {"events_in": 6, "aggregated": 6, "late": 0, "dead_lettered": 0}
    assert_accounting(out.summary)


def test_a_closer_crash_between_closing_and_emitted_re_emits_with_the_same_key(
    moto_url: str, pipeline: Pipeline
) -> None:
    batch = [
        (seq(1), line("a", B + 1_000, 1)),
        (seq(2), line("b", B + 2_000, 2)),
        (seq(3), line("a", B + 3_000, 3)),
    ]
    with deployed(pipeline, moto_url) as env:
        assert env.deliver(batch) == {"batchItemFailures": []}
        # GIVEN a closer that dies right after publishing, before marking the window EMITTED
        fault = FaultOnce("dynamodb", lambda op, params: (
            op in ("UpdateItem", "TransactWriteItems") and mentions(params, "EMITTED")
        ))
        with pytest.raises(Exception, match="injected fault"):
            env.close(flush=True)
        assert fault.fired == 1

        # WHEN the closer runs again, and once more after that
        again = env.close(flush=True)
        third = env.close(flush=True)
        out = env.collect(events_in=len(batch))

    # THEN the windows are published again, byte for byte, with the same idempotency keys
    assert again["results_published"] == 2
    assert third["results_published"] == 0
    assert len(out.results) == 4
    keys = [r["idempotency_key"] for r in out.results]
    assert len(set(keys)) == 2 and all(keys.count(k) == 2 for k in keys)
    for key in set(keys):
        copies = [r for r in out.results if r["idempotency_key"] == key]
        assert copies[0] == copies[1]
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 2, "total": 4.0},
        ("b", B): {"n": 1, "total": 2.0},
    })
    assert out.summary == {"events_in": 3, "aggregated": 3, "late": 0, "dead_lettered": 0}
    assert_accounting(out.summary)


POISON_BATCH: list[tuple[str, bytes | str, str | None, str]] = [
    # (sequence number, data, reason or None when good, what the detail names)
    (seq(10), line("a", B + 1_000, 1), None, ""),
    (seq(11), "%%% not base64 %%%", "invalid_base64", "not base64"),
    (seq(12), line("a", B + 2_000, 2), None, ""),
    (seq(13), b"\xc3\x28", "invalid_utf8", "byte 0"),
    (seq(14), b'{"user": "a"', "invalid_json", "(record)"),
    (seq(15), json.dumps({"user": "a", "ts": B, "v": [1]}).encode(), "schema_violation", "v"),
    (seq(16), line("a", B + 3_000, 4), None, ""),
    (seq(17), line("a", "2023-11-14T22:13:20", 1), "invalid_timestamp", "ts: "),
    (seq(18), line("a", 10**17, 1), "invalid_timestamp", "after 9999"),
    (seq(19), line("é" * 1_000, B, 1), "key_too_large", "['user']"),
    (seq(20), line("b", B + 4_000, 8), None, ""),
]


def test_poison_records_are_dead_lettered_with_source_coordinates_and_original_bytes(
    moto_url: str, pipeline: Pipeline
) -> None:
    with deployed(pipeline, moto_url) as env:
        response = env.deliver([(s, data) for s, data, _, _ in POISON_BATCH])
        env.close(flush=True)
        out = env.collect(events_in=len(POISON_BATCH))

    # the batch succeeds: a malformed record never fails the records around it
    assert response == {"batchItemFailures": []}
    assert_same_typed(aggregates_of(out.results), {
        ("a", B): {"n": 3, "total": 7.0},
        ("b", B): {"n": 1, "total": 8.0},
    })
    dead = {m["source"]["position"]: m for m in out.dead_letters}
    poison = [p for p in POISON_BATCH if p[2] is not None]
    assert set(dead) == {s for s, _, _, _ in poison}
    for sequence, data, reason, detail in poison:
        message: dict[str, Any] = dead[sequence]
        assert message["reason"] == reason
        assert detail in message["detail"], message["detail"]
        assert message["pipeline"] == pipeline.name
        assert message["source"]["partition"] == SHARD0
        assert message["source"]["partition_key"] == "pk"
        expected_b64 = data if isinstance(data, str) else base64.b64encode(data).decode()
        assert message["data_b64"] == expected_b64
    assert out.summary == {"events_in": 11, "aggregated": 4, "late": 0, "dead_lettered": 7}
    assert_accounting(out.summary)


def test_a_time_that_overflows_the_calendar_is_dead_lettered_not_fatal(
    moto_url: str, pipeline: Pipeline
) -> None:
    batch = [
        (seq(1), line("a", B + 1_000, 1)),
        (seq(2), line("a", "9999-12-31T23:59:59.999-01:00", 1)),
    ]
    with deployed(pipeline, moto_url) as env:
        response = env.deliver(batch)
        env.close(flush=True)
        out = env.collect(events_in=len(batch))

    assert response == {"batchItemFailures": []}
    assert [m["reason"] for m in out.dead_letters] == ["invalid_timestamp"]
    assert_same_typed(aggregates_of(out.results), {("a", B): {"n": 1, "total": 1.0}})
    assert_accounting(out.summary)
