"""End-to-end runs on the session's moto server: Kinesis -> ingest -> DynamoDB -> closer -> sink.

Expected values are computed by hand in the comments; B is 2023-11-14T22:13:20Z.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import BASE_MS as B
from tests.support import aggregates_of, assert_accounting, assert_same_typed, by_window, line
from tidegate.spec import Pipeline
from tidegate_dev.local.runner import run_pipeline

S = 10_000  # the test pipeline's tumbling window size

# Several keys, out of order, but never behind the watermark (running max - 5 s delay):
OUT_OF_ORDER = [
    line("u1", B + 1_000, 2),  # max 1000
    line("u2", B + 3_000, 7),  # max 3000
    line("u1", B + 8_000, 3),  # max 8000, watermark 3000
    line("u1", B + 4_000, 5),  # earlier than u1's last event; window ends 10000 > 3000
    line("u3", B + 2_000, 1.5),
    line("u1", B + 12_000, 1),  # max 12000, watermark 7000
    line("u2", B + 9_000, 2),
    line("u1", B + 6_000, 4),
    line("u2", B + 14_500, 10),  # max 14500, watermark 9500
    line("u1", B + 9_999, 0.5),  # last ms of window 0, still open at 9500
    line("u3", B + 11_000, 3),
    line("u2", B + 10_000, 6),  # first ms of window 1
    line("u3", "2023-11-14T23:13:25+01:00", 2),  # ISO with offset: B + 5000
]
OUT_OF_ORDER_RESULTS = {
    ("u1", B): {"n": 5, "total": 14.5, "hi": 5.0, "lo": 0.5, "mean": 2.9},
    ("u1", B + S): {"n": 1, "total": 1.0, "hi": 1.0, "lo": 1.0, "mean": 1.0},
    ("u2", B): {"n": 2, "total": 9.0, "hi": 7.0, "lo": 2.0, "mean": 4.5},
    ("u2", B + S): {"n": 2, "total": 16.0, "hi": 10.0, "lo": 6.0, "mean": 8.0},
    ("u3", B): {"n": 2, "total": 3.5, "hi": 2.0, "lo": 1.5, "mean": 1.75},
    ("u3", B + S): {"n": 1, "total": 3.0, "hi": 3.0, "lo": 3.0, "mean": 3.0},
}


@pytest.mark.parametrize(
    ("shards", "batch_size"), [(1, 100), (1, 1), (2, 3)], ids=["one-batch", "per-event", "2x3"]
)
def test_tumbling_results_for_several_keys_with_out_of_order_events_inside_the_delay(
    moto_url: str, make_pipeline: Callable[..., Pipeline], shards: int, batch_size: int
) -> None:
    # GIVEN out-of-order events of three keys that never fall behind the 5 s delay
    pipeline = make_pipeline(watermark={"delay": "5s"})

    # WHEN they run end to end
    out = run_pipeline(pipeline, OUT_OF_ORDER, shards=shards, batch_size=batch_size,
                       endpoint_url=moto_url)

    # THEN every event is aggregated into its window, whatever the shards and batches
    assert out.summary == {"events_in": 13, "aggregated": 13, "late": 0, "dead_lettered": 0,
                           "duplicates_skipped": 0, "results": 6}
    assert_accounting(out.summary)
    assert_same_typed(aggregates_of(out.results), OUT_OF_ORDER_RESULTS)
    for (user, start), result in by_window(out.results).items():
        assert result["pipeline"] == pipeline.name
        assert result["key"] == {"user": user}
        assert result["window_end"] == start + S
        assert (result["version"], result["final"]) == (1, True)
    assert len({r["idempotency_key"] for r in out.results}) == 6
    assert out.dead_letters == [] and out.late == []


# With a 2 s delay and one batch per event: the third event moves the watermark to
# 15000 - 2000 = 13000, which makes window [0, 10000) final (13000 >= 10000 + lateness).
LATE_CASE = [
    line("a", B + 1_000, 1),
    line("b", B + 2_000, 2),
    line("a", B + 15_000, 3),  # watermark 13000
    line("a", B + 3_000, 4),  # window [0, 10000) of a is final: late
    line("c", B + 9_000, 5),  # c has no state, but its window is final too: late
    line("b", B + 12_500, 6),  # window [10000, 20000) is open
]


@pytest.mark.parametrize(
    ("lateness", "batch_size", "late_times", "expected"),
    [
        (
            "0s", 1, [B + 3_000, B + 9_000],
            {
                ("a", B): {"n": 1, "total": 1.0},
                ("b", B): {"n": 1, "total": 2.0},
                ("a", B + S): {"n": 1, "total": 3.0},
                ("b", B + S): {"n": 1, "total": 6.0},
            },
        ),
        (
            # allowed lateness 5 s: window [0, 10000) closes at watermark 15000, not 13000
            "5s", 1, [],
            {
                ("a", B): {"n": 2, "total": 5.0},
                ("b", B): {"n": 1, "total": 2.0},
                ("c", B): {"n": 1, "total": 5.0},
                ("a", B + S): {"n": 1, "total": 3.0},
                ("b", B + S): {"n": 1, "total": 6.0},
            },
        ),
        (
            # one batch: every record is judged against the watermark as the batch began
            "0s", 100, [],
            {
                ("a", B): {"n": 2, "total": 5.0},
                ("b", B): {"n": 1, "total": 2.0},
                ("c", B): {"n": 1, "total": 5.0},
                ("a", B + S): {"n": 1, "total": 3.0},
                ("b", B + S): {"n": 1, "total": 6.0},
            },
        ),
    ],
    ids=["per-event", "allowed-lateness", "one-batch"],
)
def test_late_events_are_routed_to_the_late_queue_and_counted(
    moto_url: str,
    make_pipeline: Callable[..., Pipeline],
    lateness: str,
    batch_size: int,
    late_times: list[int],
    expected: dict[tuple[str, int], dict[str, int]],
) -> None:
    pipeline = make_pipeline(
        allowed_lateness=lateness, aggregates={"n": {"op": "count"},
                                               "total": {"op": "sum", "field": "v"}},
    )

    out = run_pipeline(pipeline, LATE_CASE, shards=1, batch_size=batch_size,
                       endpoint_url=moto_url)

    assert_same_typed(aggregates_of(out.results), expected)
    assert out.summary["late"] == len(late_times)
    assert out.summary["aggregated"] == 6 - len(late_times)
    assert out.summary["dead_lettered"] == 0
    assert_accounting(out.summary)
    assert sorted(m["event_time_ms"] for m in out.late) == late_times
    for message in out.late:
        assert message["reason"] == "late"
        assert message["pipeline"] == pipeline.name
        assert message["source"]["partition"] == "shardId-000000000000"
        original = json.loads(base64.b64decode(message["data_b64"]))
        assert original["ts"] == message["event_time_ms"]
        assert message["key"] == json.dumps([original["user"]])


def test_shards_1_batch_size_1_reproduces_per_event_semantics(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    """Flink's semantics, event by event: watermark = max so far - 1 s; late iff end <= wm.

    t(ms after B)  key  v   max    wm     verdict
    500            k    1   500    -500   [0,10000)
    10500          k    2   10500  9500   [10000,20000)
    9800           k    3   10500  9500   [0,10000) open (10000 > 9500)
    11200          j    4   11200  10200  [10000,20000)
    9900           k    5   11200  10200  late (10000 <= 10200)
    20000          j    6   20000  19000  [20000,30000)
    19999          k    7   20000  19000  [10000,20000) open (20000 > 19000)
    21000          k    8   21000  20000  [20000,30000)
    19000          j    9   21000  20000  late (20000 <= 20000: the end is exclusive)
    """
    pipeline = make_pipeline(
        watermark={"delay": "1s"},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}},
    )
    times = [500, 10_500, 9_800, 11_200, 9_900, 20_000, 19_999, 21_000, 19_000]
    users = ["k", "k", "k", "j", "k", "j", "k", "k", "j"]
    lines = [line(u, B + t, v) for v, (u, t) in enumerate(zip(users, times, strict=True), 1)]

    out = run_pipeline(pipeline, lines, shards=1, batch_size=1, endpoint_url=moto_url)

    assert_same_typed(aggregates_of(out.results), {
        ("k", B): {"n": 2, "total": 4.0},
        ("k", B + S): {"n": 2, "total": 9.0},
        ("j", B + S): {"n": 1, "total": 4.0},
        ("j", B + 2 * S): {"n": 1, "total": 6.0},
        ("k", B + 2 * S): {"n": 1, "total": 8.0},
    })
    assert sorted(m["event_time_ms"] for m in out.late) == [B + 9_900, B + 19_000]
    assert out.summary == {"events_in": 9, "aggregated": 7, "late": 2, "dead_lettered": 0,
                           "duplicates_skipped": 0, "results": 5}
    assert_accounting(out.summary)


POISON: list[tuple[bytes, str, str]] = [  # (record, reason, the detail names)
    (b"\xff\xfe not utf-8", "invalid_utf8", "byte 0"),
    (b'{"user": "a", "ts": ', "invalid_json", "(record)"),
    (b'["a", 1700000001000, 1]', "schema_violation", "expected a JSON object"),
    (json.dumps({"user": "a", "ts": B + 1}).encode(), "schema_violation", "v: Field required"),
    (json.dumps({"user": "a", "ts": B, "v": "9"}).encode(), "schema_violation", "v"),
    (line("a", "2023-11-14T22:13:21", 1), "invalid_timestamp", "ts: "),
    (line("a", -5, 1), "invalid_timestamp", "ts: "),
    (line("x" * 1_900, B, 1), "key_too_large", "['user']"),
    (line("a", 4_102_444_800_000, 1), "future_timestamp", "ts: "),  # 2100-01-01
]


def test_each_kind_of_poison_record_is_dead_lettered_and_the_rest_aggregated(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    # GIVEN good events with one poison record of each kind between them, in one batch
    pipeline = make_pipeline(
        watermark={"delay": "2s", "max_future_skew": "5m"},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}},
    )
    good = [line("a", B + 100 * i, i) for i in range(1, len(POISON) + 2)]  # a: 1..10
    lines: list[bytes] = []
    for i, good_line in enumerate(good):
        lines.append(good_line)
        if i < len(POISON):
            lines.append(POISON[i][0])

    # WHEN the run ingests them
    out = run_pipeline(pipeline, lines, shards=1, batch_size=100, endpoint_url=moto_url)

    # THEN the good events are aggregated: count 10, sum 1 + ... + 10 = 55
    assert_same_typed(aggregates_of(out.results), {("a", B): {"n": 10, "total": 55.0}})
    # AND each poison record is dead-lettered once, with its reason, detail and coordinates
    assert out.summary == {"events_in": 19, "aggregated": 10, "late": 0, "dead_lettered": 9,
                           "duplicates_skipped": 0, "results": 1}
    assert_accounting(out.summary)
    by_data = {base64.b64decode(m["data_b64"]): m for m in out.dead_letters}
    assert set(by_data) == {raw for raw, _, _ in POISON}
    positions = set()
    for raw, reason, detail in POISON:
        message = by_data[raw]
        assert message["reason"] == reason, raw[:40]
        assert detail in message["detail"], message["detail"]
        assert message["pipeline"] == pipeline.name
        assert message["source"]["partition"] == "shardId-000000000000"
        positions.add(message["source"]["position"])
    assert len(positions) == len(POISON)


def test_summary_accounts_for_every_record_in_a_mixed_run_on_two_shards(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    pipeline = make_pipeline(aggregates={"n": {"op": "count"}})
    lines = [line(f"u{i % 5}", B + 1_400 * i, i) for i in range(20)]
    lines[7] = b"{broken"
    lines[13] = line("u1", "not a time", 1)
    lines.append(line("u2", B, 0))  # old: late or not depending on its shard's watermark
    lines += [line("u2", B + 28_000 + i, 0) for i in range(3)]

    out: dict[str, Any] = run_pipeline(
        pipeline, lines, shards=2, batch_size=5, endpoint_url=moto_url
    ).summary

    assert out["events_in"] == 24
    assert out["dead_lettered"] == 2
    assert out["aggregated"] >= 21
    assert_accounting(out)
