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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


class BundleCloser(Closer):
    def __init__(self, assigner: PaneAssigner, **common: Any) -> None:
        super().__init__(**common)
        self.assigner = assigner

    def index_partitions(self) -> list[str]:
        return [BUNDLES]

    def close_partitions(
        self,
        watermark: int,
        partitions: Iterable[str],
        batch: int = CLOSE_BATCH,
        keep_going: Callable[[], bool] | None = None,
    ) -> CloseOutcome:
        outcome = CloseOutcome(watermark=watermark)
        p = self.pipeline
        meta = self.watermarks.pk  # the progress lives beside the watermarks
        progress = self.store.get(meta, bundles.BUNDLED_SK) or {}
        closed = int(progress["closed"]) if "closed" in progress else None
        panes = sorted(int(pane) for pane in progress.get("panes", ()))
        a = self.assigner
        due = sorted({
            ws for pane in panes for ws in a.windows_of_pane(pane)
            if self.trigger.final_at(ws + a.size_ms) <= watermark
            and (closed is None or ws + a.size_ms > closed)
        })
        if not due:
            return outcome
        ownership = self.versions.ownership(p.state_version)
        read: dict[int, list[bundles.Row]] = {}
        published_through = closed
        for ws in due:
            end = ws + a.size_ms
            decision = ownership.decide(self.trigger.final_at(end))
            if decision == Decision.HOLD:
                break  # a replay's switch decides who publishes this window and the rest
            results = self._window(ws, read)
            if decision == Decision.PUBLISH and not self.publish_results(results, batch, outcome):
                break  # published again, same keys, by the next run
            if decision != Decision.PUBLISH:
                outcome.suppressed += len(results)
            outcome.windows_closed += len(results)
            published_through = end
            if keep_going is not None and not keep_going():
                break
        if published_through is not None and published_through != closed:
            last = a.last_window_of_pane
            done = [pane for pane in panes if last(pane) + a.size_ms <= published_through]
            try:
                self.store.advance_bundle_progress(
                    meta, bundles.BUNDLED_SK, published_through, closed, done)
            except ConditionFailedError:
                pass  # a racing closer recorded it; what we published repeats its keys
        return outcome

    def _window(self, start: int, read: dict[int, list[bundles.Row]]) -> list[WindowResult]:
        """Every key's result of the window at `start`, from the bundles of its panes."""
        p = self.pipeline
        merged: dict[str, dict[str, Any]] = {}
        for pane in self.assigner.panes_of_window(start):
            rows = read.get(pane)
            if rows is None:
                pk = bundles.bundle_pk(p.name, p.state_version, pane)
                rows = read[pane] = [
                    row for item in self.store.query_partition(pk)
                    for row in bundles.rows_of(item)
                ]
            for row in rows:
                if row.first_ws > start:
                    continue  # written when this window was final already
                acc = merged.get(row.key)
                merged[row.key] = row.acc if acc is None else self.acc.merge(acc, row.acc)
        end = start + self.assigner.size_ms
        return [
            self.result(keys.key_pk(p.name, p.state_version, key), start, end, acc, 1, True)
            for key, acc in sorted(merged.items())
        ]
