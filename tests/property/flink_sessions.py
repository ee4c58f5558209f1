"""Flink's event-time session windows, event by event: a reference independent of tidegate's
state model and of the oracle's batch model.

What Flink's `WindowOperator` does with `EventTimeSessionWindows.withGap(gap)`, a bounded
out-of-orderness watermark and no allowed lateness: every event opens `[t, t + gap)`;
`MergingWindowSet` merges it with every live window it intersects, and
`TimeWindow.intersects` is `start <= other.end && end >= other.start` (touching windows
merge); the merged window is late, and the event dropped, when its cleanup time
`end - 1` is at or behind Flink's watermark `max_t - delay - 1`; a window fires and is
purged when the watermark passes `end - 1`, so a fired window never takes another event.
End of input is a final watermark that fires everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Window:
    start: int
    end: int
    values: list[int] = field(default_factory=list)


def flink_sessions(
    events: list[tuple[str, int, int]], gap: int, delay: int
) -> tuple[list[tuple[str, int, int, int, int]], list[tuple[str, int]]]:
    """(key, start, end, count, sum) of each fired session, and (key, t) of each late event.

    `events` are (key, event time, value) in arrival order, one watermark after each."""
    live: dict[str, list[Window]] = {}
    fired: list[tuple[str, int, int, int, int]] = []
    late: list[tuple[str, int]] = []
    flink_watermark = None  # max_t - delay - 1 once an event was seen

    def fire(up_to: int | None) -> None:
        for key, windows in live.items():
            for w in [w for w in windows if up_to is None or w.end - 1 <= up_to]:
                fired.append((key, w.start, w.end, len(w.values), sum(w.values)))
                windows.remove(w)

    for key, t, value in events:
        new = Window(t, t + gap, [value])
        windows = live.setdefault(key, [])
        touching = [w for w in windows if new.start <= w.end and new.end >= w.start]
        merged = Window(min([new.start] + [w.start for w in touching]),
                        max([new.end] + [w.end for w in touching]),
                        [v for w in touching for v in w.values] + [value])
        if flink_watermark is not None and merged.end - 1 <= flink_watermark:
            late.append((key, t))
        else:
            live[key] = [w for w in windows if w not in touching] + [merged]
        candidate = t - delay - 1
        if flink_watermark is None or candidate > flink_watermark:
            flink_watermark = candidate
            fire(flink_watermark)
    fire(None)
    return sorted(fired), sorted(late)
