"""Aligned windows stored as panes.

Tumbling and sliding windows are both unions of fixed panes of `gcd(size, slide)`: an event
updates exactly one pane, and a window's value is the merge of its panes when it closes.
Windows are half-open `[start_ms, end_ms)`, aligned to the Unix epoch; bounds are signed
(near t=0 a sliding window may start before 0).
"""

from __future__ import annotations

from dataclasses import dataclass


def floor_to(value: int, step: int) -> int:
    """Largest multiple of `step` <= value (Python's % keeps this right for negatives)."""
    return value - value % step


def ceil_to(value: int, step: int) -> int:
    return -floor_to(-value, step)


@dataclass(frozen=True, slots=True)
class PaneAssigner:
    """Windows of `size_ms` starting every `slide_ms`, stored as panes of `pane_ms`."""

    size_ms: int
    slide_ms: int
    pane_ms: int

    def pane_of(self, t_ms: int) -> int:
        return floor_to(t_ms, self.pane_ms)

    def first_window_of_pane(self, pane_start_ms: int) -> int:
        """Start of the earliest window that contains the whole pane."""
        return ceil_to(pane_start_ms + self.pane_ms - self.size_ms, self.slide_ms)

    def last_window_of_pane(self, pane_start_ms: int) -> int:
        return floor_to(pane_start_ms, self.slide_ms)

    def windows_of_pane(self, pane_start_ms: int) -> range:
        """Starts of every window containing the pane, ascending."""
        return range(
            self.first_window_of_pane(pane_start_ms),
            self.last_window_of_pane(pane_start_ms) + 1,
            self.slide_ms,
        )

    def window_end(self, window_start_ms: int) -> int:
        return window_start_ms + self.size_ms

    def panes_of_window(self, window_start_ms: int) -> range:
        return range(window_start_ms, window_start_ms + self.size_ms, self.pane_ms)
