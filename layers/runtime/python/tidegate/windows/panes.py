"""Pane items (tumbling and sliding windows): judging a batch group against stored state.

A pane item holds the merged accumulator of its events, a per-partition high-water mark,
`first_ws` (the first window it contributes to: windows already final when the pane was
created get nothing from it) and `next_ws` (the next window to close). When a window of the
pane is final but not yet closed, the pane's content for that window is frozen as a
snapshot before new events are merged, so a final window never changes.
"""

from __future__ import annotations

from itertools import repeat
from operator import mod, sub
from typing import Any

from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.protocol import Group, Verdict
from tidegate.windows.base import PaneAssigner, ceil_to
from tidegate.windows.trigger import EventTimeTrigger

# Bound of each per-process memo below: a few MB whatever the keys.
_MEMO_LIMIT = 50_000


class PaneState:
    def __init__(
        self, pipeline: Pipeline, assigner: PaneAssigner, accumulators: AccumulatorSet
    ) -> None:
        self.pipeline = pipeline
        self.assigner = assigner
        self.acc = accumulators
        self.trigger = EventTimeTrigger.of(pipeline)
        # Per-group work that depends only on the pane and the watermark (a batch spans a
        # few panes but hundreds of keys), and on the key: computed once, not per group.
        self._bounds: dict[tuple[str, int], tuple[int, int]] = {}
        self._keys: dict[str, tuple[str, str]] = {}
        self._sks: dict[int, str] = {}
        self._pane_ms = assigner.pane_ms
        # A new pane's `open_sk` is its first window's start plus this.
        self._first_look = self.trigger.first_at(assigner.size_ms)

    def locate(self, key: str, time_ms: int) -> tuple[str, str]:
        return self.item_of(key, self.assigner.pane_of(time_ms))

    def item_of(self, key: str, pane: int) -> tuple[str, str]:
        """(PK, SK) of the key's item of the pane starting at `pane`."""
        # _item_keys, its memo read inline (once per batch group).
        found = self._keys.get(key) or self._item_keys(key)
        return found[0], self._sks.get(pane) or self.sk_of(pane)

    def sk_of(self, pane: int) -> str:
        """The SK of the pane starting at `pane` (memoised: a batch spans a few panes)."""
        sk = self._sks.get(pane)
        if sk is None:
            if len(self._sks) >= _MEMO_LIMIT:
                self._sks.clear()
            sk = self._sks[pane] = keys.pane_sk(pane)
        return sk

    def slot(self, time_ms: int) -> int:
        return time_ms - time_ms % self._pane_ms  # assigner.pane_of, inline

    def slots(self, times: list[int]) -> list[int]:
        # t - t % pane_ms for each t, in C (map over operator functions): once per event.
        return list(map(sub, times, map(mod, times, repeat(self._pane_ms))))

    def _pane_bounds(self, sk: str, watermark: int) -> tuple[int, int]:
        """(the pane's last window, its first window not final at `watermark`)."""
        bounds = self._bounds.get((sk, watermark))
        if bounds is None:
            a = self.assigner
            pane = keys.start_of_sk(sk)
            # Windows starting before this are final at `watermark`: the first start whose
            # final_at(start + size) is beyond it.
            first_unfinal = max(
                a.first_window_of_pane(pane),
                ceil_to(watermark - self.trigger.final_at(a.size_ms) + 1, a.slide_ms),
            )
            bounds = (a.last_window_of_pane(pane), first_unfinal)
            if len(self._bounds) >= _MEMO_LIMIT:
                self._bounds.clear()
            self._bounds[(sk, watermark)] = bounds
        return bounds

    def _item_keys(self, key: str) -> tuple[str, str]:
        """(PK, open-index PK) of a key's pane items."""
        found = self._keys.get(key)
        if found is None:
            p = self.pipeline
            found = (
                keys.key_pk(p.name, p.state_version, key),
                keys.open_index_pk(p.name, p.state_version, key, p.index_shards),
            )
            if len(self._keys) >= _MEMO_LIMIT:
                self._keys.clear()
            self._keys[key] = found
        return found

    def judge(self, group: Group, item: dict[str, Any] | None, watermark: int) -> Verdict:
        batch, indices = group.batch, group.indices
        one = batch.columns.partition
        if item is None and one is not None and not batch.redriven:
            # A new item from one ordered partition (most groups): every record fresh, the
            # mark its last one's; group.fresh's answer without its steps.
            fresh, duplicates = indices, 0
            marks = {one: batch.columns.marks[indices[-1]].zfill(keys.POSITION_WIDTH)}
        else:
            fresh, duplicates, marks = group.fresh(item)
        expected = int(item["ver"]) if item else None
        if not fresh:
            return Verdict(None, expected, [], [], duplicates)
        times, values = batch.times, batch.values
        if len(fresh) == 1:
            # Most groups: one event, without the lists of group.times/values (hot path).
            (i,) = fresh
            acc = self.acc.of_event(values[i])  # type: ignore[arg-type]  # valid record
            tmin = tmax = times[i]
        else:
            acc = self.acc.of_events(group.values(fresh))
            fresh_times = group.times(fresh)
            tmin, tmax = min(fresh_times), max(fresh_times)
        new = self.merged_partial(group.key, group.sk, acc, len(fresh), tmin, tmax, item,
                                  watermark)
        if new is None:
            return Verdict(None, expected, [], fresh, duplicates)
        new["hw"] = marks
        return Verdict(new, expected, fresh, [], duplicates)

    def first_open_window(self, sk: str, watermark: int) -> int | None:
        """The start of the first window of the pane `sk` not final at `watermark`; None
        when every window of the pane is (its events are late)."""
        last_ws, first_unfinal = self._bounds.get((sk, watermark)) or self._pane_bounds(
            sk, watermark
        )
        return None if first_unfinal > last_ws else first_unfinal

    def merged_partial(
        self, key: str, sk: str, acc: dict[str, Any], n: int, tmin: int, tmax: int,
        item: dict[str, Any] | None, watermark: int,
    ) -> dict[str, Any] | None:
        """The item with `n` fresh events (between `tmin` and `tmax`, folded into `acc`)
        merged in, minus its high-water marks (`hw`, the caller's); None when every window
        of the pane is final at `watermark` (the events are late)."""
        a = self.assigner
        # _pane_bounds and _item_keys below with their memos read inline: once per group.
        last_ws, first_unfinal = self._bounds.get((sk, watermark)) or self._pane_bounds(
            sk, watermark
        )
        if item is None:
            # A new pane: its first window is the first not final (the steps below, with
            # floor_ws = first_unfinal and nothing frozen).
            if first_unfinal > last_ws:
                return None
            pk, open_pk = self._keys.get(key) or self._item_keys(key)
            return {
                "PK": pk,
                "SK": sk,
                "acc": acc,
                "n": n,
                "ver": 1,
                "first_ws": first_unfinal,
                "next_ws": first_unfinal,
                "tmin": tmin,
                "tmax": tmax,
                "open_pk": open_pk,
                # When the closer first looks at the pane's next window.
                "open_sk": first_unfinal + self._first_look,
            }
        floor_ws = max(int(item["first_ws"]), int(item["next_ws"]))
        open_ws = max(floor_ws, first_unfinal)
        while open_ws <= last_ws and keys.snapshot_attrs(open_ws)[0] in item:
            open_ws += a.slide_ms  # frozen by the closer: final already
        if open_ws > last_ws:
            return None

        new = dict(item)
        # Final but not yet closed windows keep the pane as it was before this batch.
        for ws in range(floor_ws, open_ws, a.slide_ms):
            acc_attr, n_attr = keys.snapshot_attrs(ws)
            if acc_attr not in new:
                new[acc_attr] = item["acc"]
                new[n_attr] = item["n"]
        new["acc"] = self.acc.merge(item["acc"], acc)
        new["n"] = int(item["n"]) + n
        new["ver"] = int(item["ver"]) + 1
        new["tmin"] = min(int(item.get("tmin", tmin)), tmin)
        new["tmax"] = max(int(item.get("tmax", tmax)), tmax)
        return new
