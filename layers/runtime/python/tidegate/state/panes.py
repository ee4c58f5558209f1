"""Pane items (tumbling and sliding windows): judging a batch group against stored state.

A pane item holds the merged accumulator of its events, a per-partition high-water mark,
`first_ws` (the first window it contributes to: windows already final when the pane was
created get nothing from it) and `next_ws` (the next window to close). When a window of the
pane is final but not yet closed, the pane's content for that window is frozen as a
snapshot before new events are merged, so a final window never changes.
"""

from __future__ import annotations

from typing import Any

from tidegate.aggregates.builtin import AccumulatorSet
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.protocol import Member, Verdict, split_duplicates
from tidegate.windows.base import PaneAssigner, ceil_to


class PaneState:
    def __init__(
        self, pipeline: Pipeline, assigner: PaneAssigner, accumulators: AccumulatorSet
    ) -> None:
        self.pipeline = pipeline
        self.assigner = assigner
        self.acc = accumulators
        self.lateness = pipeline.allowed_lateness

    def locate(self, key: str, time_ms: int) -> tuple[str, str]:
        pk = keys.key_pk(self.pipeline.name, self.pipeline.state_version, key)
        return pk, keys.pane_sk(self.assigner.pane_of(time_ms))

    def judge(
        self, key: str, sk: str, members: list[Member], item: dict[str, Any] | None,
        watermark: int,
    ) -> Verdict:
        fresh, duplicates, marks = split_duplicates(members, item)
        expected = int(item["ver"]) if item else None
        if not fresh:
            return Verdict(None, expected, [], [], duplicates)

        a = self.assigner
        pane = keys.start_of_sk(sk)
        last_ws = a.last_window_of_pane(pane)
        # Windows starting before this are final at `watermark` (close = end + lateness).
        first_unfinal = max(
            a.first_window_of_pane(pane),
            ceil_to(watermark - a.size_ms - self.lateness + 1, a.slide_ms),
        )
        if item is None:
            floor_ws = first_unfinal
        else:
            floor_ws = max(int(item["first_ws"]), int(item["next_ws"]))
        open_ws = max(floor_ws, first_unfinal)
        while item is not None and open_ws <= last_ws and keys.snapshot_attrs(open_ws)[0] in item:
            open_ws += a.slide_ms  # frozen by the closer: final already
        if open_ws > last_ws:
            return Verdict(None, expected, [], fresh, duplicates)

        batch_acc = self.acc.create()
        times = [event.time_ms for _, event in fresh]
        for _, event in fresh:
            self.acc.add_event(batch_acc, event.values)

        if item is None:
            new: dict[str, Any] = {
                "PK": keys.key_pk(self.pipeline.name, self.pipeline.state_version, key),
                "SK": sk,
                "acc": batch_acc,
                "n": len(fresh),
                "ver": 1,
                "first_ws": open_ws,
                "next_ws": open_ws,
                "tmin": min(times),
                "tmax": max(times),
                "open_pk": keys.open_index_pk(
                    self.pipeline.name, self.pipeline.state_version, key,
                    self.pipeline.index_shards,
                ),
                # When the closer first looks at the pane's next window.
                "open_sk": open_ws + a.size_ms
                + (0 if self.pipeline.emit == "updates" else self.lateness),
            }
        else:
            new = dict(item)
            # Final but not yet closed windows keep the pane as it was before this batch.
            for ws in range(floor_ws, open_ws, a.slide_ms):
                acc_attr, n_attr = keys.snapshot_attrs(ws)
                if acc_attr not in new:
                    new[acc_attr] = item["acc"]
                    new[n_attr] = item["n"]
            new["acc"] = self.acc.merge(item["acc"], batch_acc)
            new["n"] = int(item["n"]) + len(fresh)
            new["ver"] = int(item["ver"]) + 1
            new["tmin"] = min(int(item.get("tmin", min(times))), min(times))
            new["tmax"] = max(int(item.get("tmax", max(times))), max(times))
        new["hw"] = marks
        return Verdict(new, expected, [r for r, _ in fresh], [], duplicates)
