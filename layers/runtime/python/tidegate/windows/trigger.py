"""When a window is due, for every window kind: Flink's event-time trigger with allowed
lateness, and tidegate's `emit: updates` early versions.

A window `[start, end)` is final once the watermark reaches `end + allowed_lateness`; with
`emit: updates` a first version is published once it reaches `end`, and another whenever
events were added since. Closing code asks the trigger; it never recomputes the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidegate.spec import Pipeline


@dataclass(frozen=True, slots=True)
class EventTimeTrigger:
    lateness_ms: int
    early_updates: bool  # `emit: updates`

    @classmethod
    def of(cls, pipeline: Pipeline) -> EventTimeTrigger:
        return cls(pipeline.allowed_lateness, pipeline.emit == "updates")

    def final_at(self, end_ms: int) -> int:
        """The watermark at which the window is final: never reopened, published as final."""
        return end_ms + self.lateness_ms

    def first_at(self, end_ms: int) -> int:
        """The watermark at which the window is first published."""
        return end_ms if self.early_updates else end_ms + self.lateness_ms

    def next_at(self, end_ms: int, unpublished: bool) -> int:
        """When the closer next has something to do for the window: an early version at its
        end (when it holds events no version has carried), else its close."""
        if self.early_updates and unpublished:
            return end_ms
        return end_ms + self.lateness_ms
