"""Window assigners: which windows an event time belongs to (pure functions of `*_ms`)."""

from __future__ import annotations

from tidegate.spec import Pipeline, SessionWindow, SlidingWindow, TumblingWindow
from tidegate.windows.base import PaneAssigner
from tidegate.windows.sliding import SlidingAssigner
from tidegate.windows.tumbling import TumblingAssigner


def assigner_for(pipeline: Pipeline) -> PaneAssigner:
    window = pipeline.window
    if isinstance(window, TumblingWindow):
        return TumblingAssigner(window.size)
    if isinstance(window, SlidingWindow):
        return SlidingAssigner(window.size, window.slide)
    if isinstance(window, SessionWindow):
        raise NotImplementedError("session windows are handled by the session assigner")
    raise TypeError(f"unknown window {window!r}")
