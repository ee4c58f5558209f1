"""Window arithmetic: half-open, epoch-aligned, signed bounds; sliding windows as panes."""

from __future__ import annotations

import pytest

from tests.support import pipeline_spec
from tidegate.spec import parse_pipeline
from tidegate.windows import assigner_for
from tidegate.windows.sliding import SlidingAssigner
from tidegate.windows.tumbling import TumblingAssigner


@pytest.mark.parametrize(
    ("size", "t", "start"),
    [
        (10, 0, 0),
        (10, 1, 0),
        (10, 9, 0),
        (10, 10, 10),  # the end is exclusive: t == end opens the next window
        (10, 11, 10),
        (10, 19, 10),
        (10, -1, -10),  # negative times floor down, not toward zero
        (10, -10, -10),
        (10, -11, -20),
        (60_000, 1_700_000_000_000, 1_699_999_980_000),
        (60_000, 1_699_999_980_000, 1_699_999_980_000),
        (60_000, 1_700_000_039_999, 1_699_999_980_000),
        (60_000, 1_700_000_040_000, 1_700_000_040_000),
        (86_400_000, 1_700_000_000_000, 1_699_920_000_000),  # days start at 00:00Z
        (7, 20, 14),
        (1, 5, 5),
    ],
)
def test_tumbling_window_start(size: int, t: int, start: int) -> None:
    tumbling = TumblingAssigner(size)

    pane = tumbling.pane_of(t)

    assert pane == start
    assert list(tumbling.windows_of_pane(pane)) == [start]
    assert tumbling.window_end(start) == start + size
    assert start <= t < tumbling.window_end(start)


@pytest.mark.parametrize(
    ("size", "slide", "pane"),
    [(10, 5, 5), (10, 4, 2), (60_000, 15_000, 15_000), (9, 6, 3), (10, 10, 10), (7, 3, 1)],
)
def test_sliding_panes_are_the_gcd_of_size_and_slide(size: int, slide: int, pane: int) -> None:
    assert SlidingAssigner(size, slide).pane_ms == pane


@pytest.mark.parametrize(
    ("size", "slide", "t", "window_starts"),
    [
        # size 10, slide 5: near 0 the first window starts before the epoch
        (10, 5, 0, [-5, 0]),
        (10, 5, 4, [-5, 0]),
        (10, 5, 5, [0, 5]),
        (10, 5, 9, [0, 5]),
        (10, 5, 10, [5, 10]),
        (10, 5, -1, [-10, -5]),
        (10, 5, -6, [-15, -10]),
        # size 10, slide 4, panes of 2
        (10, 4, 0, [-8, -4, 0]),
        (10, 4, 1, [-8, -4, 0]),
        (10, 4, 2, [-4, 0]),
        (10, 4, 7, [0, 4]),
        (10, 4, 8, [0, 4, 8]),
        (10, 4, 9, [0, 4, 8]),
        (10, 4, 10, [4, 8]),
        # one-minute windows every 15 s
        (60_000, 15_000, 1_700_000_000_000,
         [1_699_999_950_000, 1_699_999_965_000, 1_699_999_980_000, 1_699_999_995_000]),
    ],
)
def test_sliding_windows_of_an_event(
    size: int, slide: int, t: int, window_starts: list[int]
) -> None:
    sliding = SlidingAssigner(size, slide)

    starts = list(sliding.windows_of_pane(sliding.pane_of(t)))

    assert starts == window_starts
    for start in starts:
        assert start <= t < sliding.window_end(start)


def test_size_10_slide_5_window_minus_5_holds_t_0_to_4_and_nothing_else() -> None:
    sliding = SlidingAssigner(10, 5)
    holders = {
        t for t in range(-20, 20) if -5 in sliding.windows_of_pane(sliding.pane_of(t))
    }
    assert holders == {-5, -4, -3, -2, -1, 0, 1, 2, 3, 4}
    assert sliding.window_end(-5) == 5


@pytest.mark.parametrize(
    ("size", "slide", "pane_start", "first", "last"),
    [
        (10, 5, 0, -5, 0),
        (10, 5, -5, -10, -5),
        (10, 4, 6, 0, 4),  # [6, 8) is in [0, 10) and [4, 14) only
        (10, 4, 8, 0, 8),
        (10, 4, -2, -8, -4),
        (9, 6, 3, 0, 0),  # [3, 6) is in [0, 9) only: [-6, 3) ends where it starts
        (10, 10, 20, 20, 20),
    ],
)
def test_first_and_last_window_of_a_pane(
    size: int, slide: int, pane_start: int, first: int, last: int
) -> None:
    sliding = SlidingAssigner(size, slide)
    assert sliding.first_window_of_pane(pane_start) == first
    assert sliding.last_window_of_pane(pane_start) == last


@pytest.mark.parametrize(
    ("size", "slide", "window_start", "panes"),
    [
        (10, 5, -5, [-5, 0]),
        (10, 4, 4, [4, 6, 8, 10, 12]),
        (10, 10, 0, [0]),
    ],
)
def test_panes_of_a_window(size: int, slide: int, window_start: int, panes: list[int]) -> None:
    assert list(SlidingAssigner(size, slide).panes_of_window(window_start)) == panes


@pytest.mark.parametrize(("size", "slide"), [(10, 5), (10, 4), (9, 6), (12, 12), (15, 10)])
def test_each_window_is_the_union_of_the_panes_that_name_it(size: int, slide: int) -> None:
    """Brute force over [-50, 50): an event is in exactly the windows that contain it."""
    sliding = SlidingAssigner(size, slide)
    for t in range(-50, 50):
        by_definition = [ws for ws in range(-100, 100) if ws % slide == 0 and ws <= t < ws + size]
        assert list(sliding.windows_of_pane(sliding.pane_of(t))) == by_definition, t
        for ws in by_definition:
            assert sliding.pane_of(t) in sliding.panes_of_window(ws)


@pytest.mark.parametrize(
    ("size", "slide"), [(0, 1), (-10, 5), (10, 0), (10, -5), (5, 10)]
)
def test_invalid_sliding_configurations_are_refused(size: int, slide: int) -> None:
    with pytest.raises(ValueError):
        SlidingAssigner(size, slide)


@pytest.mark.parametrize("size", [0, -1])
def test_invalid_tumbling_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError):
        TumblingAssigner(size)


def test_assigner_follows_the_pipeline_window() -> None:
    tumbling = assigner_for(parse_pipeline(pipeline_spec()))
    sliding = assigner_for(
        parse_pipeline(pipeline_spec(window={"type": "sliding", "size": "1m", "slide": "20s"}))
    )
    assert (tumbling.size_ms, tumbling.slide_ms, tumbling.pane_ms) == (10_000, 10_000, 10_000)
    assert (sliding.size_ms, sliding.slide_ms, sliding.pane_ms) == (60_000, 20_000, 20_000)
