"""Close what the watermark has passed and publish it (the shared loop, and pane windows).

A pane window (tumbling, sliding) moves OPEN -> CLOSING -> EMITTED:

1. freeze: each pane of the window gets a snapshot for it (conditional: the first snapshot
   wins, so the window's content is fixed once and for all, even with closers racing);
2. claim: the merged result is written to the window's item as CLOSING (conditional put:
   a racing closer adopts the result already written instead of its own);
3. publish the stored result to the sink;
4. mark EMITTED and move each pane on to its next window (or out of the open index).

A crash between any two steps is repaired by the next run: it finds the pane still in the
open index, the window CLOSING, and re-publishes the same bytes with the same idempotency key.

With `emit: updates` a window is first published at its end, unfrozen, as PENDING ->
PUBLISHED versions (a new one whenever accepted late events changed it), and closed as
above at `end + allowed_lateness`, the last version marked final. Sessions: session_closer.py.

While a replay builds a new state version, only one version publishes each window
(versions.py): a claim another version owns is closed without publishing, and one not yet
decided stays claimed until the switch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate.aggregates.builtin import AccumulatorSet
from tidegate.results import WindowResult, idempotency_key, key_object
from tidegate.sinks.base import Sink
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.versions import ActiveVersions, Decision
from tidegate.watermark import MAX_WATERMARK, WatermarkStore
from tidegate.windows.base import PaneAssigner

CLOSING = "CLOSING"
EMITTED = "EMITTED"
# `emit: updates`: an early version is PENDING until published, then PUBLISHED.
PENDING = "PENDING"
PUBLISHED = "PUBLISHED"


@dataclass
class CloseOutcome:
    watermark: int = 0
    windows_closed: int = 0
    results_published: int = 0
    publish_failures: int = 0
    suppressed: int = 0  # closed without publishing: another state version publishes them
    held: int = 0  # claimed, waiting for a replay's switch to decide who publishes them
    results: list[WindowResult] = field(default_factory=list)


@dataclass
class Claim:
    pk: str
    sk: str  # the window's result item
    window_start: int
    result: WindowResult | None  # None: nothing to publish (empty, or published already)
    final: bool = True  # False: an early version (`emit: updates`); the window stays open


class Closer:
    """The close loop shared by every window kind: watermark, claims, publish, complete."""

    def __init__(
        self,
        pipeline: Pipeline,
        accumulators: AccumulatorSet,
        store: DynamoStore,
        watermarks: WatermarkStore,
        sink: Sink,
        expected_partitions: Callable[[], list[str]],
        now_ms: Callable[[], int],
        retention_s: int,
    ) -> None:
        self.pipeline = pipeline
        self.acc = accumulators
        self.store = store
        self.watermarks = watermarks
        self.sink = sink
        self.expected_partitions = expected_partitions
        self.now_ms = now_ms
        self.retention_s = retention_s
        self.lateness = pipeline.allowed_lateness
        self.versions = ActiveVersions(store, pipeline.name)

    def current_watermark(self, flush: bool = False) -> int:
        """The pipeline watermark now, stored so that it never moves back."""
        if flush:
            target = MAX_WATERMARK
        else:
            spec = self.pipeline.watermark
            state = self.watermarks.read()
            target = state.pipeline_watermark(
                self.now_ms(), spec.idle_timeout, self.expected_partitions(),
                spec.advance_when_idle,
            )
            if target <= state.floor:
                return state.floor
        return self.watermarks.advance_pipeline(target)

    def run(self, flush: bool = False) -> CloseOutcome:
        watermark = self.current_watermark(flush)
        return self.publish(watermark, self.claims(watermark))

    def publish(self, watermark: int, claims: list[Claim]) -> CloseOutcome:
        """Publish what was claimed, then mark it emitted and release its state."""
        outcome = CloseOutcome(watermark=watermark)
        # Read after the watermark was stored: a switch after this read hands over at a
        # watermark at or above it, so this run's claims stay ours (versions.switch).
        ownership = self.versions.ownership(self.pipeline.state_version)
        decisions = {
            id(c): ownership.decide(int(c.result["window_end"]) + self.lateness)
            for c in claims if c.result is not None
        }
        publishable = [c for c in claims if decisions.get(id(c)) == Decision.PUBLISH]
        failed: set[int] = set()
        if publishable:
            failed = set(self.sink.publish([c.result for c in publishable]))  # type: ignore[misc]
        outcome.publish_failures = len(failed)
        done = {id(c) for i, c in enumerate(publishable) if i not in failed}
        for claim in claims:
            decision = decisions.get(id(claim))
            if decision == Decision.HOLD:
                outcome.held += 1
                continue  # stays claimed; decided after the switch
            if decision == Decision.PUBLISH and id(claim) not in done:
                continue  # stays CLOSING; the next run publishes it again
            if decision == Decision.SKIP:
                self.mark_emitted(claim)  # its result stays in the item, unpublished
                outcome.suppressed += 1
            elif claim.result is not None:
                self.mark_emitted(claim)
                outcome.results.append(claim.result)
            if claim.final:
                self.complete(claim)
                outcome.windows_closed += 1
        outcome.results_published = len(done)
        return outcome

    def claims(self, watermark: int) -> list[Claim]:
        raise NotImplementedError

    def complete(self, claim: Claim) -> None:
        """After the result is out (or there was none): release the window's state."""

    def mark_emitted(self, claim: Claim) -> None:
        if not claim.final:
            self.store.update(
                claim.pk,
                claim.sk,
                "SET #st = :published REMOVE open_pk, open_sk",
                "#st = :pending AND version = :v",  # a newer version may be on its way
                names={"#st": "state"},
                values={":published": PUBLISHED, ":pending": PENDING,
                        ":v": claim.result["version"] if claim.result else 0},
            )
            return
        self.store.update(
            claim.pk,
            claim.sk,
            "SET #st = :emitted, expire_at = :exp REMOVE open_pk, open_sk",
            "#st = :closing",  # a racing closer may have marked it already
            names={"#st": "state"},
            values={":emitted": EMITTED, ":closing": CLOSING, ":exp": self.expiry()},
        )

    def result(
        self, pk: str, start: int, end: int, acc: dict[str, Any], version: int, final: bool
    ) -> WindowResult:
        key = keys.key_of_pk(pk)
        return WindowResult(
            pipeline=self.pipeline.name,
            key=key_object(list(self.pipeline.key), key),
            window_start=start,
            window_end=end,
            aggregates=self.acc.results(acc),
            version=version,
            final=final,
            idempotency_key=idempotency_key(
                self.pipeline.name, self.pipeline.state_version, key, start, end, version
            ),
        )

    def expiry(self) -> int:
        return self.now_ms() // 1000 + self.retention_s

    def index_partitions(self) -> list[str]:
        return keys.open_index_partitions(
            self.pipeline.name, self.pipeline.state_version, self.pipeline.index_shards
        )


class PaneCloser(Closer):
    """Tumbling and sliding windows: a window is the merge of its panes' frozen snapshots."""

    def __init__(self, *args: Any, assigner: PaneAssigner, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.assigner = assigner

    def claims(self, watermark: int) -> list[Claim]:
        return [
            self._claim(pk, ws, watermark) for pk, ws in sorted(self._due_windows(watermark))
        ]

    def complete(self, claim: Claim) -> None:
        self._finish(claim.pk, claim.window_start)

    # -- discovery -----------------------------------------------------------------------
    def close_at(self, window_start: int) -> int:
        return window_start + self.assigner.size_ms + self.lateness

    def trigger_at(self, window_start: int) -> int:
        """When a window is first published: at its end with `emit: updates`."""
        if self.pipeline.emit == "updates":
            return window_start + self.assigner.size_ms
        return self.close_at(window_start)

    def _due_windows(self, watermark: int) -> set[tuple[str, int]]:
        a = self.assigner
        due: set[tuple[str, int]] = set()
        for index_pk in self.index_partitions():
            for pane in self.store.query_open(index_pk, watermark):
                pane_start = keys.start_of_sk(pane["SK"])
                ws = int(pane["next_ws"])
                last = a.last_window_of_pane(pane_start)
                while ws <= last and self.trigger_at(ws) <= watermark:
                    due.add((pane["PK"], ws))
                    ws += a.slide_ms
        return due

    # -- one window ----------------------------------------------------------------------
    def _panes(self, pk: str, window_start: int) -> list[dict[str, Any]]:
        end = window_start + self.assigner.size_ms
        return self.store.query_range(pk, keys.pane_sk(window_start), keys.pane_sk(end - 1))

    def _claim(self, pk: str, window_start: int, watermark: int) -> Claim:
        sk = keys.window_sk(window_start)
        final = self.close_at(window_start) <= watermark
        existing = self.store.get(pk, sk)
        state = existing.get("state") if existing else None
        if state == EMITTED:
            return Claim(pk, sk, window_start, None)
        if state in (CLOSING, PENDING):
            # Claimed by an earlier run that did not finish: publish the same bytes again.
            return Claim(pk, sk, window_start, json.loads(existing["result_json"]),
                         final=state == CLOSING)

        acc: dict[str, Any] | None = None
        count = 0
        for pane in self._panes(pk, window_start):
            if window_start < int(pane["first_ws"]) or window_start < int(pane["next_ws"]):
                continue  # the pane began after this window was final, or is past it
            if final:
                pane_acc, pane_n = self._freeze(pane, window_start)
            else:
                pane_acc, pane_n = pane["acc"], pane["n"]  # may still grow: not frozen
            acc = self.acc.merge(acc, pane_acc)
            count += int(pane_n)
        if count == 0:
            return Claim(pk, sk, window_start, None, final=final)
        if not final and existing is not None and int(existing["n"]) == count:
            return Claim(pk, sk, window_start, None, final=False)  # nothing new since

        version = int(existing["version"]) + 1 if existing else 1
        end = window_start + self.assigner.size_ms
        result = self.result(pk, window_start, end, acc or {}, version=version, final=final)
        fields = {
            "state": CLOSING if final else PENDING,
            "result_json": json.dumps(result, separators=(",", ":")),
            "n": count,
            "version": version,
        }
        if existing is None:
            winner = self.store.put_new({"PK": pk, "SK": sk, **fields})
        else:
            # Only the closer that read version N may write version N + 1.
            applied, winner = self.store.update(
                pk, sk,
                "SET #st = :st, result_json = :rj, n = :n, version = :v",
                "#st = :published AND version = :prev",
                names={"#st": "state"},
                values={":st": fields["state"], ":rj": fields["result_json"],
                        ":n": count, ":v": version, ":published": PUBLISHED,
                        ":prev": version - 1},
            )
            if applied:
                winner = None
        if winner is not None:
            if winner.get("state") in (EMITTED, PUBLISHED):
                return Claim(pk, sk, window_start, None, final=final)
            return Claim(pk, sk, window_start, json.loads(winner["result_json"]),
                         final=winner.get("state") == CLOSING)
        return Claim(pk, sk, window_start, result, final=final)

    def _freeze(self, pane: dict[str, Any], window_start: int) -> tuple[Any, Any]:
        """The pane's content for this window, frozen on first sight."""
        acc_attr, n_attr = keys.snapshot_attrs(window_start)
        if acc_attr in pane:
            return pane[acc_attr], pane[n_attr]
        # Only the first freeze applies: a later one would add events that arrived after
        # the window was final. Bumping `ver` makes an in-flight ingest re-read the pane.
        _, item = self.store.update(
            pane["PK"],
            pane["SK"],
            "SET #a = acc, #n = n, ver = ver + :one",
            "attribute_not_exists(#a)",
            names={"#a": acc_attr, "#n": n_attr},
            values={":one": 1},
            return_new=True,
        )
        if item is None or acc_attr not in item:
            raise RuntimeError(f"pane {pane['PK']} {pane['SK']} vanished while closing")
        return item[acc_attr], item[n_attr]

    def _finish(self, pk: str, window_start: int) -> None:
        """Move each pane past this window; a pane with no window left leaves the index."""
        a = self.assigner
        following = window_start + a.slide_ms
        for pane in self._panes(pk, window_start):
            current = int(pane["next_ws"])
            if current > window_start:
                continue
            pane_start = keys.start_of_sk(pane["SK"])
            names: dict[str, str] = {}
            removes: list[str] = []
            for i, ws in enumerate(range(current, following, a.slide_ms)):
                acc_attr, n_attr = keys.snapshot_attrs(ws)
                names[f"#a{i}"], names[f"#n{i}"] = acc_attr, n_attr
                removes += [f"#a{i}", f"#n{i}"]
            values: dict[str, Any] = {":next": following, ":ws": window_start, ":one": 1}
            sets = ["next_ws = :next", "ver = ver + :one"]
            if following > a.last_window_of_pane(pane_start):
                removes += ["open_pk", "open_sk"]
                sets.append("expire_at = :exp")
                values[":exp"] = self.expiry()
            else:
                sets.append("open_sk = :close")
                values[":close"] = self.trigger_at(following)
            expression = "SET " + ", ".join(sets) + " REMOVE " + ", ".join(removes)
            # Never moves a pane backwards: a racing closer may have finished it already.
            self.store.update(
                pk, pane["SK"], expression, "next_ws <= :ws", names=names, values=values
            )
