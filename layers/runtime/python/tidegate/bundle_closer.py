"""Closing bundled state (`mini_batch`): windows are published in event-time order from the
bundles of their panes, and one conditional write per closer run records the progress.

No window gets a write of its own. What keeps every result published once, and never
changed after it is out:

* Progress: the `BUNDLED` item's `closed` is the end of the last window published; a run
  publishes the windows that ended after it and are final at the watermark, then moves it
  on, conditional on the value it read. Two closers racing publish the same results with
  the same idempotency keys, and one of them records the progress.
* A crash between publishing and recording: the next run publishes the same windows again,
  from the same bundles, with the same idempotency keys.
* No bundle can join a window after it is published: a shard writes its bundles before its
  watermark passes them, and each partial names the first window it may join, one not final
  at that shard's watermark (tidegate/bundles.py). A window is published only once the
  pipeline watermark, the minimum over shards, makes it final.
* Bundles are never deleted: they expire (TTL), and leave the set of panes once every window
  of their pane is published.

With `emit: updates`, a window that ended gets early versions until it is final. A key's
version is the number of flushes its window holds (final: one more), so the same content
always carries the same version and idempotency key, and a later version holds more. A run
publishes an early version of every key of a window that ended since the last recorded run
(`early`), and of the keys a flush newer than the recorded positions (`seen`) reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tidegate import bundles
from tidegate.closer import CLOSE_BATCH, CloseOutcome, Closer
from tidegate.errors import ConditionFailedError
from tidegate.results import WindowResult
from tidegate.state import keys
from tidegate.versions import Decision
from tidegate.windows.base import PaneAssigner

# The one "index partition" of bundled state: the closer runs it inline, never fanned out.
BUNDLES = "bundles"


@dataclass
class _KeyWindow:
    """One key's content of one window, from the bundles."""

    acc: dict[str, Any] | None = None
    flushes: set[tuple[str, str]] = field(default_factory=set)
    new: bool = False  # holds a flush written after the last early versions


Read = dict[int, list[tuple[bundles.Row, tuple[str, str]]]]


class BundledCloser(Closer):
    """What closing bundled state shares across window kinds."""

    def index_partitions(self) -> list[str]:
        return [BUNDLES]

    def positions(self) -> dict[str, str]:
        """Each partition's written-through position: read before the bundles, every flush
        through these is in what the run reads."""
        state = self.watermarks.read()
        return {p: mark.position for p, mark in state.partitions.items() if mark.position}

    def version_of(self, flushes: int, final: bool) -> int:
        """`emit: final`: 1. `emit: updates`: an early version is the number of flushes it
        holds, and the final one more (a final window takes no further flush); without
        allowed lateness no early version comes before the final, which is 1."""
        if not self.trigger.early_updates or not self.trigger.lateness_ms:
            return 1
        return flushes + 1 if final else flushes


class BundleCloser(BundledCloser):
    def __init__(self, assigner: PaneAssigner, **common: Any) -> None:
        super().__init__(**common)
        self.assigner = assigner

    def close_partitions(
        self,
        watermark: int,
        partitions: Iterable[str],
        batch: int = CLOSE_BATCH,
        keep_going: Callable[[], bool] | None = None,
    ) -> CloseOutcome:
        outcome = CloseOutcome(watermark=watermark)
        meta = self.watermarks.pk  # the progress lives beside the watermarks
        progress = bundles.Progress.read(self.store, meta)
        a, trigger = self.assigner, self.trigger
        windows = sorted({ws for pane in progress.panes for ws in a.windows_of_pane(pane)})
        final_due = [ws for ws in windows
                     if trigger.final_at(ws + a.size_ms) <= watermark
                     and (progress.closed is None or ws + a.size_ms > progress.closed)]
        early_due = [ws for ws in windows if trigger.early_updates
                     and ws + a.size_ms <= watermark < trigger.final_at(ws + a.size_ms)]
        if not final_due and not early_due:
            return outcome
        positions = self.positions() if early_due else None
        ownership = self.versions.ownership(self.pipeline.state_version)
        read: Read = {}
        published_through = progress.closed
        for ws in final_due:
            end = ws + a.size_ms
            decision = ownership.decide(trigger.final_at(end))
            if decision == Decision.HOLD:
                break  # a replay's switch decides who publishes this window and the rest
            results = self._results(ws, self._window(ws, read, progress), final=True)
            if decision == Decision.PUBLISH and not self.publish_results(results, batch, outcome):
                break  # published again, same keys, by the next run
            if decision != Decision.PUBLISH:
                outcome.suppressed += len(results)
            outcome.windows_closed += len(results)
            published_through = end
            if keep_going is not None and not keep_going():
                break
        early_done = bool(early_due)
        for ws in early_due:
            if ownership.decide(trigger.final_at(ws + a.size_ms)) != Decision.PUBLISH:
                early_done = False  # held or another version's: left to the next run
                continue
            first = progress.early is None or ws + a.size_ms > progress.early
            content = {key: kw for key, kw in self._window(ws, read, progress).items()
                       if first or kw.new}
            if not self.publish_results(self._results(ws, content, final=False), batch,
                                        outcome):
                early_done = False
                break
        done: list[int] = []
        if published_through is not None and published_through != progress.closed:
            last = a.last_window_of_pane
            done = [pane for pane in progress.panes
                    if last(pane) + a.size_ms <= published_through]
        if done or published_through != progress.closed or early_done:
            try:
                self.store.advance_bundle_progress(
                    meta, bundles.BUNDLED_SK, published_through, progress.closed, done,
                    early=watermark if early_done else None,
                    seen=positions if early_done else None)
            except ConditionFailedError:
                pass  # a racing closer recorded it; what we published repeats its keys
        return outcome

    def _window(self, start: int, read: Read, progress: bundles.Progress,
                ) -> dict[str, _KeyWindow]:
        """Every key's content of the window at `start`, from the bundles of its panes."""
        p = self.pipeline
        merged: dict[str, _KeyWindow] = {}
        for pane in self.assigner.panes_of_window(start):
            rows = read.get(pane)
            if rows is None:
                pk = bundles.bundle_pk(p.name, p.state_version, pane)
                rows = read[pane] = [
                    (row, bundles.flush_of(item)) for item in self.store.query_partition(pk)
                    for row in bundles.rows_of(item)
                ]
            for row, flush in rows:
                if row.first_ws > start:
                    continue  # written when this window was final already
                kw = merged.get(row.key)
                if kw is None:
                    kw = merged[row.key] = _KeyWindow()
                kw.acc = row.acc if kw.acc is None else self.acc.merge(kw.acc, row.acc)
                kw.flushes.add(flush)
                kw.new = kw.new or progress.is_new(flush)
        return merged

    def _results(self, start: int, content: dict[str, _KeyWindow], final: bool,
                 ) -> list[WindowResult]:
        p = self.pipeline
        end = start + self.assigner.size_ms
        return [
            self.result(keys.key_pk(p.name, p.state_version, key), start, end, kw.acc or {},
                        self.version_of(len(kw.flushes), final), final)
            for key, kw in sorted(content.items())
        ]
