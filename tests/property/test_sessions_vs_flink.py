"""Session windows through the whole local pipeline give Flink's sessions, with events drawn
on a grid of the gap so that many are exactly `gap` apart (the touching case).

Shards 1 / batch 1 is event-by-event, Flink's own granularity, so late events must match
too. On 3 shards in batches of 50 the watermark moves per batch and per shard; there the
workload is late-free (the delay covers the disorder), and the sessions must still match.
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import BASE_MS as B
from tidegate_dev.local.runner import run_pipeline

from .flink_sessions import flink_sessions
from .strategies import make_pipeline

GAP = 1_000
EXAMPLES = max(4, int(os.environ.get("TIDEGATE_PROPERTY_EXAMPLES", "67")) // 6)


@st.composite
def grid_events(draw: st.DrawFn, disorder: int) -> list[tuple[str, int, int]]:
    """(key, t, value) in arrival order: times on multiples of half the gap, a few a
    millisecond off, each arriving up to `disorder` ms after later-stamped ones."""
    n = draw(st.integers(min_value=1, max_value=14))
    events = []
    for _ in range(n):
        slot = draw(st.integers(min_value=0, max_value=16)) * GAP // 2
        nudge = draw(st.sampled_from([0, 0, 0, 1, -1]))
        events.append((draw(st.sampled_from(["a", "b"])), max(0, slot + nudge),
                       draw(st.integers(min_value=-5, max_value=9))))
    events.sort(key=lambda e: e[1])
    # Arrival order: each event may move back behind events up to `disorder` ms later.
    jitter = [draw(st.integers(min_value=0, max_value=disorder)) for _ in events]
    return [e for _, e in sorted(zip(jitter, events, strict=True),
                                 key=lambda p: p[1][1] + p[0])]


def _lines(events: list[tuple[str, int, int]]) -> list[bytes]:
    return [json.dumps({"user": k, "kind": "x", "ts": B + t, "v": v, "n": v}).encode()
            for k, t, v in events]


def _tidegate(events: list[tuple[str, int, int]], delay: int, shards: int, batch: int,
              moto_url: str) -> tuple[list[Any], list[Any]]:
    pipeline = make_pipeline({"type": "session", "gap": GAP}, delay=delay, aggregates={
        "count": {"op": "count"}, "sum_n": {"op": "sum", "field": "n"}})
    out = run_pipeline(pipeline, _lines(events), shards=shards, batch_size=batch,
                       endpoint_url=moto_url)
    windows = sorted((r["key"]["user"], r["window_start"] - B, r["window_end"] - B,
                      r["aggregates"]["count"], r["aggregates"]["sum_n"])
                     for r in out.results if r["final"])
    late = sorted((json.loads(m["key"])[0], m["event_time_ms"] - B) for m in out.late)
    return windows, late


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow,
                                            HealthCheck.function_scoped_fixture],
                     print_blob=True)


@_SETTINGS
@given(events=grid_events(disorder=3 * GAP), delay=st.sampled_from([0, GAP // 2, GAP]))
def test_event_by_event_sessions_and_late_events_match_flink(
    moto_url: str, events: list[tuple[str, int, int]], delay: int
) -> None:
    expected = flink_sessions(events, GAP, delay)
    assert _tidegate(events, delay, 1, 1, moto_url) == expected


@_SETTINGS
@given(events=grid_events(disorder=2 * GAP))
def test_batched_sharded_sessions_match_flink_when_nothing_is_late(
    moto_url: str, events: list[tuple[str, int, int]]
) -> None:
    delay = 3 * GAP  # covers the disorder: nothing can be late, on any shard or batch
    windows, late = flink_sessions(events, GAP, delay)
    assert late == []
    assert _tidegate(events, delay, 3, 50, moto_url) == (windows, [])
