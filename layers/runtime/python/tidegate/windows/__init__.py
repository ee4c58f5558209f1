"""Window assigners: which windows an event time belongs to (pure functions of `*_ms`)."""

from __future__ import annotations

from tidegate.spec import Pipeline, SessionWindow, SlidingWindow, TumblingWindow
from tidegate.windows.base import PaneAssigner
from tidegate.windows.session import SessionAssigner
from tidegate.windows.sliding import SlidingAssigner
from tidegate.windows.tumbling import TumblingAssigner


def assigner_for(pipeline: Pipeline) -> PaneAssigner | SessionAssigner:
    window = pipeline.window
    if isinstance(window, TumblingWindow):
        return TumblingAssigner(window.size)
    if isinstance(window, SlidingWindow):
        return SlidingAssigner(window.size, window.slide)
    if isinstance(window, SessionWindow):
        return SessionAssigner(window.gap, window.max_length)
    raise TypeError(f"unknown window {window!r}")
