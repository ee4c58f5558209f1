"""How each window kind folds a batch into a mini-batch buffer's partials, and turns them
into bundle rows when the buffer is written (tidegate/mini_batch.py, tidegate/bundles.py).

* Panes (tumbling, sliding): one partial per (key, pane). A row carries the first window it
  may join, the first not final where the shard's watermark stood when it was written.
* Sessions: per key, fragments (the gap-merge of the key's buffered events) keyed by their
  first event time. A row carries the watermark it was judged at (`since`); the closer
  merges a key's fragments in the order of that watermark and never lets one extend a
  session already final there (tidegate/session_bundle_closer.py), which makes a published
  session independent of when the closer ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidegate import bundles
from tidegate.state.protocol import Group
from tidegate.windows.panes import PaneState
from tidegate.windows.session import Session, SessionState

# Sessions have no panes: their bundles are filed by the fragment's start in buckets of the
# gap, at least a minute (the closer reads every bucket holding an unpublished fragment).
MIN_SESSION_BUCKET_MS = 60_000


@dataclass
class Partial:
    acc: dict[str, Any]
    n: int
    tmin: int
    tmax: int


Partials = dict[tuple[str, int], Partial]
# Bundle rows by bucket (a pane's start), and the partials final before they were written.
Rows = tuple[dict[int, list[bundles.Row]], list[tuple[str, Partial]]]


class PaneFold:
    def __init__(self, windows: PaneState) -> None:
        self.windows = windows
        self.acc = windows.acc
        self.retention_ms = windows.assigner.size_ms + windows.pipeline.allowed_lateness

    def bucket_of(self, pane: int) -> int:
        return pane

    def begin(self, partials: Partials) -> None:
        """Before a batch (nothing to prepare: a partial is found by its key and pane)."""

    def fold(self, partials: Partials, group: Group, indices: list[int], watermark: int,
             ) -> list[int]:
        """Fold a group's fresh records in; returns those that are late at `watermark`."""
        if self.windows.first_open_window(group.sk, watermark) is None:
            return indices
        times = group.times(indices)
        acc = self.acc.of_events(group.values(indices))
        at = (group.key, self.windows.slot(times[0]))
        found = partials.get(at)
        if found is None:
            partials[at] = Partial(acc, len(indices), min(times), max(times))
        else:
            found.acc = self.acc.merge(found.acc, acc)
            found.n += len(indices)
            found.tmin = min(found.tmin, min(times))
            found.tmax = max(found.tmax, max(times))
        return []

    def rows(self, partials: Partials, watermark: int) -> Rows:
        rows: dict[int, list[bundles.Row]] = {}
        late: list[tuple[str, Partial]] = []
        for (key, pane), p in sorted(partials.items()):
            first_ws = self.windows.first_open_window(self.windows.sk_of(pane), watermark)
            if first_ws is None:
                late.append((key, p))
            else:
                rows.setdefault(pane, []).append(
                    bundles.Row(key, p.n, p.tmin, p.tmax, first_ws, p.acc))
        return rows, late


class SessionFold:
    def __init__(self, sessions: SessionState) -> None:
        self.sessions = sessions
        self.acc = sessions.acc
        self.assigner = sessions.assigner
        self.bucket_ms = max(self.assigner.gap_ms, MIN_SESSION_BUCKET_MS)
        # Bundles outlive the gap and lateness of their last session by the retention; the
        # session closer keeps the bundles of a longer session alive.
        self.retention_ms = self.assigner.gap_ms + sessions.pipeline.allowed_lateness
        self._starts: dict[str, list[int]] = {}

    def bucket_of(self, start_ms: int) -> int:
        return start_ms - start_ms % self.bucket_ms

    def begin(self, partials: Partials) -> None:
        """Before a batch: the buffered fragments' starts by key (a batch folds each key
        once, and the buffer holds thousands of keys)."""
        self._starts = {}
        for key, start in partials:
            self._starts.setdefault(key, []).append(start)

    def fold(self, partials: Partials, group: Group, indices: list[int], watermark: int,
             ) -> list[int]:
        """Merge the group's events with the key's buffered fragments (the assigner's rule);
        events that would only form sessions final at `watermark` are late."""
        key = group.key
        stored = []
        for start in self._starts.pop(key, ()):
            p = partials.pop((key, start))
            stored.append(Session(start, p.tmax, p.acc, p.n, stored=True))
        times, values = group.batch.times, group.batch.values
        singles = [Session(times[i], times[i], self.acc.of_event(values[i]),  # type: ignore[arg-type]  # valid record
                           1, members=[i]) for i in indices]
        late: list[int] = []
        starts = self._starts[key] = []
        for s in self.assigner.merge(stored + singles, self.acc.merge):
            if not s.stored and self.sessions.close_at(s) <= watermark:
                late += s.members
            else:
                partials[(key, s.start_ms)] = Partial(s.acc, s.n, s.start_ms, s.last_ms)
                starts.append(s.start_ms)
        return late

    def rows(self, partials: Partials, watermark: int) -> Rows:
        rows: dict[int, list[bundles.Row]] = {}
        late: list[tuple[str, Partial]] = []
        for (key, start), p in sorted(partials.items()):
            if self.sessions.close_at(Session(start, p.tmax, p.acc, p.n)) <= watermark:
                late.append((key, p))
            else:
                rows.setdefault(self.bucket_of(start), []).append(
                    bundles.Row(key, p.n, p.tmin, p.tmax, watermark, p.acc))
        return rows, late
