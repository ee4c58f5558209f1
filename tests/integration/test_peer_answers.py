"""The answers Flink and Kafka Streams give, through the whole local pipeline, whatever the
shard count and batch size: touching sessions merge; float sums are exact."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import pytest

from tests.support import BASE_MS as B
from tests.support import assert_accounting, line
from tidegate.spec import Pipeline
from tidegate_dev.local.runner import run_pipeline

LAYOUTS = [(1, 1), (1, 100), (3, 1), (3, 100)]
LAYOUT_IDS = ["1x1", "1x100", "3x1", "3x100"]


@pytest.mark.parametrize(("shards", "batch_size"), LAYOUTS, ids=LAYOUT_IDS)
def test_events_exactly_gap_apart_share_a_session(
    moto_url: str, make_pipeline: Callable[..., Pipeline], shards: int, batch_size: int
) -> None:
    # Gap 3 s: 1000 and 4000 are exactly a gap apart, so [1000, 4000) and [4000, 7000) touch
    # and merge (Flink: `TimeWindow.intersects` is inclusive); 20000 is far from both.
    pipeline = make_pipeline(
        window={"type": "session", "gap": "3s"}, watermark={"delay": "2s"},
        aggregates={"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}},
    )
    lines = [line("k", B + 1_000, 1), line("k", B + 4_000, 2), line("k", B + 20_000, 4)]

    out = run_pipeline(pipeline, lines, shards=shards, batch_size=batch_size,
                       endpoint_url=moto_url)

    spans = sorted((r["window_start"] - B, r["window_end"] - B, r["aggregates"]["n"],
                    r["aggregates"]["total"]) for r in out.results)
    assert spans == [(1_000, 7_000, 2, 3), (20_000, 23_000, 1, 4)]
    assert out.summary["late"] == 0
    assert_accounting(out.summary)


TUMBLING = {"type": "tumbling", "size": "10s"}
SLIDING = {"type": "sliding", "size": "10s", "slide": "5s"}  # panes merged at close
SESSION = {"type": "session", "gap": "10s"}


@pytest.mark.parametrize(("window", "batch_size"), [
    (TUMBLING, 1), (TUMBLING, 2), (TUMBLING, 3), (TUMBLING, 100),
    (SLIDING, 1), (SLIDING, 2), (SESSION, 1), (SESSION, 2),
], ids=["tumbling-1", "tumbling-2", "tumbling-3", "tumbling-100",
        "sliding-1", "sliding-2", "session-1", "session-2"])
def test_float_sums_are_exact_at_every_batch_size(
    moto_url: str, make_pipeline: Callable[..., Pipeline], batch_size: int,
    window: dict[str, str],
) -> None:
    # 38 significant digits (DynamoDB's numbers) cannot hold 1e39 + 1.0; the exact sum is 1.0.
    pipeline = make_pipeline(
        window=window, watermark={"delay": "1s"},
        aggregates={"total": {"op": "sum", "field": "v"}, "mean": {"op": "avg", "field": "v"}},
    )
    values = [1.0, 1e39, -1e39, 0.1, 0.2]
    lines = [line("k", B + 1_000 + i, v) for i, v in enumerate(values)]

    out = run_pipeline(pipeline, lines, shards=1, batch_size=batch_size, endpoint_url=moto_url)

    windows = [r for r in out.results if r["window_start"] <= B + 1_000 < r["window_end"]]
    assert windows, out.results
    for result in windows:
        assert result["aggregates"]["total"] == math.fsum(values) == 1.3
        assert result["aggregates"]["mean"] == float(sum(map(Fraction, values)) / 5) == 0.26
