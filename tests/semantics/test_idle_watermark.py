"""Idle partitions: left out of the watermark minimum; when all are idle, windows still close."""

from __future__ import annotations

import pytest

from tidegate.watermark import MIN_WATERMARK, PartitionMark, WatermarkState

IDLE = 60_000


def state(**marks: tuple[int, int]) -> WatermarkState:
    """marks: partition -> (watermark, last_seen processing time)."""
    return WatermarkState(
        partitions={name: PartitionMark(wm, wm, seen) for name, (wm, seen) in marks.items()}
    )


def test_minimum_over_active_partitions() -> None:
    s = state(a=(1_000, 100_000), b=(5_000, 100_000))
    assert s.pipeline_watermark(now_ms=100_500, idle_timeout_ms=IDLE) == 1_000


def test_idle_partition_is_left_out() -> None:
    # GIVEN partition a has been silent for longer than idle_timeout
    s = state(a=(1_000, 10_000), b=(5_000, 100_000))
    # THEN it no longer holds the pipeline back
    assert s.pipeline_watermark(now_ms=100_500, idle_timeout_ms=IDLE) == 5_000
    # AND exactly at the timeout it is idle; one ms before, it is not
    assert s.pipeline_watermark(now_ms=10_000 + IDLE, idle_timeout_ms=IDLE) == 5_000
    assert s.pipeline_watermark(now_ms=10_000 + IDLE - 1, idle_timeout_ms=IDLE) == 1_000


def test_expected_partition_without_records_holds_back_until_idle() -> None:
    s = state(a=(5_000, 100_000))
    assert s.pipeline_watermark(100_500, IDLE, expected_partitions=["a", "b"]) == MIN_WATERMARK
    assert s.pipeline_watermark(100_000 + IDLE + 1, IDLE, ["a", "b"], False) == 5_000


def test_all_idle_advances_by_processing_time() -> None:
    # GIVEN every partition went quiet 90 s ago (processing time)
    s = state(a=(1_000, 10_000), b=(5_000, 10_000))
    # THEN event time is taken to have moved on by the same 90 s
    assert s.pipeline_watermark(now_ms=100_000, idle_timeout_ms=IDLE) == 5_000 + 90_000


def test_all_idle_without_advance_keeps_the_highest_watermark() -> None:
    # A replay of old data must not be marked late because the replay paused.
    s = state(a=(1_000, 10_000), b=(5_000, 10_000))
    got = s.pipeline_watermark(now_ms=100_000, idle_timeout_ms=IDLE, advance_when_idle=False)
    assert got == 5_000


@pytest.mark.parametrize("floor", [7_000, 10**12])
def test_never_moves_back(floor: int) -> None:
    s = state(a=(1_000, 100_000))
    s.floor = floor
    assert s.pipeline_watermark(now_ms=100_500, idle_timeout_ms=IDLE) == floor
