"""Sliding windows: every `[k*slide, k*slide + size)` containing t, as panes of gcd(size, slide)."""

from __future__ import annotations

from math import gcd

from tidegate.windows.base import PaneAssigner


def SlidingAssigner(size_ms: int, slide_ms: int) -> PaneAssigner:  # noqa: N802
    if size_ms <= 0 or slide_ms <= 0:
        raise ValueError("sliding window size and slide must be positive")
    if slide_ms > size_ms:
        raise ValueError("slide must not exceed size")
    return PaneAssigner(size_ms=size_ms, slide_ms=slide_ms, pane_ms=gcd(size_ms, slide_ms))
