"""The oracle on small cases worked out by hand, so it is checked independently of the system."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from .oracle import aggregate, decode, partition_key, run_oracle, shard_index
from .strategies import line, make_pipeline

COUNT = {"count": {"op": "count"}}


def ev(t: Any, user: str = "a", **extra: Any) -> bytes:
    return line({"user": user, "kind": "x", "ts": t, "v": 1, "n": 1, **extra})


def windows(run: Any) -> list[tuple[str, int, int, int]]:
    return sorted(
        (r["key"]["user"], r["window_start"], r["window_end"], r["aggregates"]["count"])
        for r in run.results
    )


def counts(run: Any) -> tuple[int, int, int]:
    return run.aggregated, run.late, run.dead_lettered


# -- tumbling and sliding ----------------------------------------------------------------------
def test_tumbling_bounds_are_half_open() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    run = run_oracle(p, [ev(0), ev(9), ev(10)], batch_size=1)
    assert windows(run) == [("a", 0, 10, 2), ("a", 10, 20, 1)]
    assert counts(run) == (3, 0, 0)
    assert all(r["version"] == 1 and r["final"] is True for r in run.results)


def test_sliding_windows_start_before_zero() -> None:
    p = make_pipeline({"type": "sliding", "size": 10, "slide": 5})
    # 3 is in [-5, 5) and [0, 10); 7 is in [0, 10) and [5, 15).
    run = run_oracle(p, [ev(3), ev(7)], batch_size=1)
    assert windows(run) == [("a", -5, 5, 1), ("a", 0, 10, 2), ("a", 5, 15, 1)]


def test_late_event_is_counted_not_aggregated() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    # After 25 the watermark is 25: [0, 10) closed at 10, so 5 is late.
    run = run_oracle(p, [ev(0), ev(25), ev(5)], batch_size=1)
    assert windows(run) == [("a", 0, 10, 1), ("a", 20, 30, 1)]
    assert counts(run) == (2, 1, 0)


def test_allowed_lateness_keeps_the_window_open() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10}, lateness=20)
    # [0, 10) closes at 10 + 20 = 30 > 25.
    run = run_oracle(p, [ev(0), ev(25), ev(5)], batch_size=1)
    assert windows(run) == [("a", 0, 10, 2), ("a", 20, 30, 1)]
    assert counts(run) == (3, 0, 0)


def test_delay_holds_the_watermark_back() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10}, delay=16)
    # Watermark 25 - 16 = 9 < 10 when 5 arrives.
    run = run_oracle(p, [ev(0), ev(25), ev(5)], batch_size=1)
    assert counts(run) == (3, 0, 0)


def test_a_batch_is_judged_at_the_watermark_it_began_with() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    # One batch: 25 has not moved the watermark when 5 is judged.
    run = run_oracle(p, [ev(0), ev(25), ev(5)], batch_size=3)
    assert windows(run) == [("a", 0, 10, 2), ("a", 20, 30, 1)]
    assert counts(run) == (3, 0, 0)
    # Batches of 2: [0, 25] then [5]; the second batch begins at watermark 25.
    run = run_oracle(p, [ev(0), ev(25), ev(5)], batch_size=2)
    assert counts(run) == (2, 1, 0)


def test_sliding_event_late_for_some_windows_counts_in_the_others() -> None:
    p = make_pipeline({"type": "sliding", "size": 10, "slide": 5})
    # At watermark 12, 8's window [0, 10) is final but [5, 15) is not.
    run = run_oracle(p, [ev(12), ev(8)], batch_size=1)
    assert windows(run) == [("a", 5, 15, 2), ("a", 10, 20, 1)]
    assert counts(run) == (2, 0, 0)


def test_sliding_event_late_for_all_windows() -> None:
    p = make_pipeline({"type": "sliding", "size": 10, "slide": 5})
    # At watermark 20 both of 8's windows ([0, 10) and [5, 15)) are final.
    run = run_oracle(p, [ev(20), ev(8)], batch_size=1)
    assert windows(run) == [("a", 15, 25, 1), ("a", 20, 30, 1)]
    assert counts(run) == (1, 1, 0)


def test_keys_are_separate() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    run = run_oracle(p, [ev(1, "a"), ev(2, "b"), ev(3, "a")], batch_size=1)
    assert windows(run) == [("a", 0, 10, 2), ("b", 0, 10, 1)]


# -- sessions ----------------------------------------------------------------------------------
SESSION = {"type": "session", "gap": 10}


def test_session_merges_within_and_at_the_gap_not_beyond_it() -> None:
    p = make_pipeline(SESSION, delay=100)
    # 0 and 5 overlap ([0,10), [5,15)); 15 is exactly 10 after 5: [5,15) and [15,25) touch
    # and merge (Flink); 26 is 11 after 15 and starts a new session.
    run = run_oracle(p, [ev(0), ev(5), ev(15), ev(26)], batch_size=1)
    assert windows(run) == [("a", 0, 25, 3), ("a", 26, 36, 1)]


def test_session_bridging_event_merges_two_sessions() -> None:
    p = make_pipeline(SESSION, delay=100)
    # [0,10) and [16,26) are apart; 8's [8,18) overlaps both: one session [0, 26).
    run = run_oracle(p, [ev(0), ev(16), ev(8)], batch_size=1)
    assert windows(run) == [("a", 0, 26, 3)]
    assert counts(run) == (3, 0, 0)


def test_session_late_event() -> None:
    p = make_pipeline(SESSION)
    # At watermark 50, [0,10) is final; 5 alone would be [5,15), closed at 15 <= 50: late.
    run = run_oracle(p, [ev(0), ev(50), ev(5)], batch_size=1)
    assert windows(run) == [("a", 0, 10, 1), ("a", 50, 60, 1)]
    assert counts(run) == (2, 1, 0)


def test_final_session_is_never_reopened() -> None:
    p = make_pipeline(SESSION)
    # b:12 moves the watermark to 12: a's [0,10) is final. a:8 would overlap it but starts
    # a new session [8,18), which is not final at 12, so it is aggregated, not late.
    run = run_oracle(p, [ev(0, "a"), ev(12, "b"), ev(8, "a")], batch_size=1)
    assert windows(run) == [("a", 0, 10, 1), ("a", 8, 18, 1), ("b", 12, 22, 1)]
    assert counts(run) == (3, 0, 0)


def test_session_batch_events_merge_with_each_other_before_judgement() -> None:
    p = make_pipeline(SESSION)
    lines = [ev(52, "b"), ev(53, "b"), ev(40), ev(45)]
    # Batches [52, 53] then [40, 45] at watermark 53: 40 alone ([40,50), closes at 50) would
    # be late, but merged with 45 it is [40, 55), closing at 55 > 53: both aggregated.
    run = run_oracle(p, lines, batch_size=2)
    assert windows(run) == [("a", 40, 55, 2), ("b", 52, 63, 2)]
    assert counts(run) == (4, 0, 0)
    # One at a time: 40 is late on its own, 45 makes [45, 55).
    run = run_oracle(p, lines, batch_size=1)
    assert windows(run) == [("a", 45, 55, 1), ("b", 52, 63, 2)]
    assert counts(run) == (3, 1, 0)


def test_session_batch_only_merged_session_can_be_late() -> None:
    p = make_pipeline(SESSION)
    # Batches [100, 40] (watermark -inf: both kept) then [45] at watermark 100: [40,50) is
    # final and frozen, [45, 55) closes at 55 <= 100: late.
    run = run_oracle(p, [ev(100), ev(40), ev(45)], batch_size=2)
    assert windows(run) == [("a", 40, 50, 1), ("a", 100, 110, 1)]
    assert counts(run) == (2, 1, 0)


def test_session_lateness_extends_the_close() -> None:
    p = make_pipeline(SESSION, lateness=50)
    # [0,10) closes at 10 + 50 = 60 > 50: 5 merges into it.
    run = run_oracle(p, [ev(0), ev(50), ev(5)], batch_size=1)
    assert windows(run) == [("a", 0, 15, 2), ("a", 50, 60, 1)]


# -- partitions --------------------------------------------------------------------------------
def test_partition_key_and_shard() -> None:
    p = make_pipeline(SESSION, key=["user", "kind"])
    assert partition_key(p, ev(1, "é")) == '["\\u00e9","x"]'
    assert partition_key(p, b"junk") == hashlib.sha256(b"junk").hexdigest()
    key = '["a"]'
    h = int(hashlib.md5(key.encode()).hexdigest(), 16)
    assert shard_index(key, 1) == 0
    assert shard_index(key, 2) == (0 if h < 2**127 else 1)
    assert shard_index(key, 3) == h // (2**128 // 3)


def _keys_on_shards(shards: int) -> dict[int, str]:
    p = make_pipeline(SESSION)
    found: dict[int, str] = {}
    for user in ["a", "b", "c", "d", "e", "f", "g", "h"]:
        found.setdefault(shard_index(partition_key(p, ev(0, user)), shards), user)
    return found


def test_a_silent_shard_holds_the_watermark_back() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    first = _keys_on_shards(2)[0]
    # Only shard 0 has events; shard 1 is at -inf, so nothing is late.
    run = run_oracle(p, [ev(0, first), ev(25, first), ev(5, first)], shards=2, batch_size=1)
    assert counts(run) == (3, 0, 0)


def test_watermark_is_the_minimum_over_shards() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    users = _keys_on_shards(2)
    s0, s1 = users[0], users[1]
    # Round 1: shard 0 [s0:30], shard 1 [s1:12] -> watermark min(30, 12) = 12.
    # Round 2: shard 0 [s0:5] judged at 12: [0,10) is final, late.
    #          shard 1 [s1:15] judged at 12: aggregated.
    lines = [ev(30, s0), ev(12, s1), ev(5, s0), ev(15, s1)]
    run = run_oracle(p, lines, shards=2, batch_size=1)
    assert counts(run) == (3, 1, 0)
    assert windows(run) == sorted([(s0, 30, 40, 1), (s1, 10, 20, 2)])


def test_shards_are_processed_in_order_within_a_round() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    users = _keys_on_shards(2)
    s0, s1 = users[0], users[1]
    # Round 1: shard 0 [s0:30] (watermark stays -inf: shard 1 silent), shard 1 [s1:30]:
    # watermark 30 after it. Round 2: shard 0 [s0:25] is judged at 30: late.
    lines = [ev(30, s0), ev(30, s1), ev(25, s0)]
    run = run_oracle(p, lines, shards=2, batch_size=1)
    assert counts(run) == (2, 1, 0)


# -- validation and aggregates -----------------------------------------------------------------
def test_invalid_lines_are_dead_lettered_and_do_not_move_the_watermark() -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    lines = [
        ev(0),
        b"not json",
        line({"user": "a", "kind": "x", "ts": 100, "v": "1", "n": 1}),  # v is a string
        line({"user": "a", "kind": "x", "ts": -5, "v": 1, "n": 1}),  # before 1970
        line({"user": "a", "kind": "x", "ts": "1970-01-01T00:00:01", "v": 1, "n": 1}),  # naive
        ev(5),
    ]
    run = run_oracle(p, lines, batch_size=1)
    assert counts(run) == (2, 0, 4)
    assert windows(run) == [("a", 0, 10, 2)]


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (5, True),
        (5.0, True),
        (5.5, False),
        (True, False),
        ("1970-01-01T00:00:00.005Z", True),
        ("1970-01-01T02:00:00.005+02:00", True),
        ("1970-01-01T00:00:00.005", False),
        ("soon", False),
        (-1, False),
        (253_402_300_800_000, False),
    ],
)
def test_event_time_forms(value: Any, valid: bool) -> None:
    p = make_pipeline({"type": "tumbling", "size": 10})
    event = decode(p, line({"user": "a", "kind": "x", "ts": value, "v": 1, "n": 1}))
    assert (event is not None) == valid
    if event is not None and value != 253_402_300_800_000:
        assert event.time_ms == 5


def test_aggregates_keep_integers_and_sum_decimals_exactly() -> None:
    aggs = {
        "count": {"op": "count"},
        "count_opt": {"op": "count", "field": "opt"},
        "sum_n": {"op": "sum", "field": "n"},
        "sum_v": {"op": "sum", "field": "v"},
        "avg_n": {"op": "avg", "field": "n"},
        "max_v": {"op": "max", "field": "v"},
        "min_opt": {"op": "min", "field": "opt"},
        "avg_opt": {"op": "avg", "field": "opt"},
    }
    p = make_pipeline({"type": "tumbling", "size": 10}, aggregates=aggs)
    lines = [
        line({"user": "a", "kind": "x", "ts": 1, "v": 0.1, "n": 2**53 + 1}),
        line({"user": "a", "kind": "x", "ts": 2, "v": 0.2, "n": 1, "opt": 3}),
        line({"user": "a", "kind": "x", "ts": 3, "v": 0.2, "n": 2, "opt": None}),
    ]
    events = [decode(p, x) for x in lines]
    assert all(e is not None for e in events)
    out = aggregate(p, [e for e in events if e is not None])
    assert out == {
        "count": 3,
        "count_opt": 1,
        "sum_n": 2**53 + 4,  # exact: a float sum would lose the 1
        "sum_v": 0.5,  # 0.1 + 0.2 + 0.2 as decimals, not 0.5000000000000001
        "avg_n": float(2**53 + 4) / 3,
        "max_v": 0.2,
        "min_opt": 3.0,  # a `number` field: a float, though the value was written 3
        "avg_opt": 3.0,
    }
    assert type(out["sum_n"]) is int and type(out["min_opt"]) is float
    assert type(out["avg_opt"]) is float


def test_a_number_fields_extreme_is_a_float_whichever_value_wins() -> None:
    p = make_pipeline(
        {"type": "tumbling", "size": 10}, aggregates={"max_v": {"op": "max", "field": "v"}}
    )
    lines = [
        line({"user": "a", "kind": "x", "ts": 1, "v": 2.0, "n": 1}),
        line({"user": "a", "kind": "x", "ts": 2, "v": 2, "n": 1}),
    ]
    events = [e for e in (decode(p, x) for x in lines) if e is not None]
    assert aggregate(p, events) == {"max_v": 2.0}
    assert type(aggregate(p, events)["max_v"]) is float
    assert type(aggregate(p, events[1:])["max_v"]) is float  # only the value written 2
