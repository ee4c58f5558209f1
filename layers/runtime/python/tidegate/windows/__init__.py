"""Window kinds. `window_kind(pipeline)` is the one place a pipeline's window becomes its
assigner (which windows an event time belongs to), its state rules (how a batch changes
stored state: `panes.PaneState` for tumbling and sliding windows, `session.SessionState`)
and its trigger (when a window is due, when an update is emitted)."""

from __future__ import annotations

from dataclasses import dataclass

from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.spec import Pipeline, SessionWindow, SlidingWindow, TumblingWindow
from tidegate.windows.base import PaneAssigner
from tidegate.windows.panes import PaneState
from tidegate.windows.session import SessionAssigner, SessionState
from tidegate.windows.sliding import SlidingAssigner
from tidegate.windows.trigger import EventTimeTrigger
from tidegate.windows.tumbling import TumblingAssigner


@dataclass(frozen=True, slots=True)
class WindowKind:
    name: str  # the pipeline file's `window.type`
    pipeline: Pipeline
    assigner: PaneAssigner | SessionAssigner
    trigger: EventTimeTrigger

    @property
    def sessions(self) -> bool:
        """Sessions merge per key and close one by one; the other kinds are panes."""
        return isinstance(self.assigner, SessionAssigner)

    def state(self, accumulators: AccumulatorSet) -> PaneState | SessionState:
        if isinstance(self.assigner, SessionAssigner):
            return SessionState(self.pipeline, self.assigner, accumulators)
        return PaneState(self.pipeline, self.assigner, accumulators)


def window_kind(pipeline: Pipeline) -> WindowKind:
    window = pipeline.window
    assigner: PaneAssigner | SessionAssigner
    if isinstance(window, TumblingWindow):
        assigner = TumblingAssigner(window.size)
    elif isinstance(window, SlidingWindow):
        assigner = SlidingAssigner(window.size, window.slide)
    elif isinstance(window, SessionWindow):
        assigner = SessionAssigner(window.gap, window.max_length)
    else:
        raise TypeError(f"unknown window {window!r}")
    return WindowKind(window.type, pipeline, assigner, EventTimeTrigger.of(pipeline))


def assigner_for(pipeline: Pipeline) -> PaneAssigner | SessionAssigner:
    return window_kind(pipeline).assigner
