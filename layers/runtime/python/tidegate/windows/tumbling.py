"""Tumbling windows: `start = t - t mod size`; one pane per window."""

from __future__ import annotations

from tidegate.windows.base import PaneAssigner


def TumblingAssigner(size_ms: int) -> PaneAssigner:  # noqa: N802 - reads as a type at call sites
    if size_ms <= 0:
        raise ValueError("tumbling window size must be positive")
    return PaneAssigner(size_ms=size_ms, slide_ms=size_ms, pane_ms=size_ms)
