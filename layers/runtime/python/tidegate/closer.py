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
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.errors import ConditionFailedError, StateVanishedError
from tidegate.in_flight import each_in_flight
from tidegate.results import WindowResult, idempotency_key, key_object
from tidegate.sinks.base import Sink
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.store import CLOSING, EMITTED, PENDING, PUBLISHED, StateStore
from tidegate.versions import ActiveVersions, Decision
from tidegate.watermark import MAX_WATERMARK, WatermarkStore
from tidegate.windows.base import PaneAssigner
from tidegate.windows.trigger import EventTimeTrigger

# Windows claimed, published and completed together: one Kinesis PutRecords (the largest
# sink batch), so a worker's memory and a crash's re-work stay bounded at any scale.
CLOSE_BATCH = 500
# A sink batch is sent up to this many times, each retry carrying only the entries that
# failed; what still fails stays CLOSING for the next run.
PUBLISH_ATTEMPTS = 3


@dataclass
class CloseOutcome:
    watermark: int = 0
    windows_closed: int = 0
    results_published: int = 0
    publish_failures: int = 0
    suppressed: int = 0  # closed without publishing: another state version publishes them
    held: int = 0  # claimed, waiting for a replay's switch to decide who publishes them
    results: list[WindowResult] = field(default_factory=list)
    workers: int = 0  # fan-out: work orders handed to workers
    refused: int = 0  # fan-out: orders no worker took, closed by the coordinator itself

    def add(self, other: CloseOutcome) -> None:
        self.windows_closed += other.windows_closed
        self.results_published += other.results_published
        self.publish_failures += other.publish_failures
        self.suppressed += other.suppressed
        self.held += other.held
        self.results += other.results


@dataclass
class Claim:
    pk: str
    sk: str  # the window's result item
    window_start: int
    result: WindowResult | None  # None: nothing to publish (empty, or published already)
    final: bool = True  # False: an early version (`emit: updates`); the window stays open
    # The window's panes as the claim read them: completing reuses this read.
    panes: list[dict[str, Any]] | None = None


T = TypeVar("T")
R = TypeVar("R")


def per_key(items: list[T], key_of: Callable[[T], str], work: Callable[[T], R],
            concurrency: int) -> list[R]:
    """`work` on each item, in order within a key (a key's windows complete in order), keys
    side by side up to `concurrency`; results in the order of `items`."""
    if concurrency <= 1 or len(items) <= 1:
        return [work(item) for item in items]
    by_key: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        by_key.setdefault(key_of(item), []).append(i)
    results: list[Any] = [None] * len(items)

    def run(indexes: list[int]) -> None:
        for i in indexes:
            results[i] = work(items[i])

    each_in_flight(list(by_key.values()), run, concurrency)
    return results


class Closer:
    """The close loop shared by every window kind: watermark, claims, publish, complete."""

    def __init__(
        self,
        pipeline: Pipeline,
        accumulators: AccumulatorSet,
        store: StateStore,
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
        self.trigger = EventTimeTrigger.of(pipeline)
        self.versions = ActiveVersions(store, pipeline.name)
        # Windows of different keys claimed and completed side by side within a batch.
        self.concurrency = 1

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

    retry_delay_s = 0.1  # before the first retry of failed entries; doubles each time

    def run(self, flush: bool = False) -> CloseOutcome:
        watermark = self.current_watermark(flush)
        return self.close_partitions(watermark, self.index_partitions())

    def close_partitions(
        self,
        watermark: int,
        partitions: Iterable[str],
        batch: int = CLOSE_BATCH,
        keep_going: Callable[[], bool] | None = None,
    ) -> CloseOutcome:
        """A worker's job: close what `watermark` made due in these index partitions, a
        batch at a time. `keep_going` is asked before each batch (the Lambda time budget);
        what is left stays in the index for the next run."""
        outcome = CloseOutcome(watermark=watermark)
        for claims in self.claim_batches(watermark, list(partitions), batch):
            outcome.add(self.publish(watermark, claims))
            if keep_going is not None and not keep_going():
                break
        return outcome

    def claim_batches(
        self, watermark: int, partitions: list[str], batch: int
    ) -> Iterator[list[Claim]]:
        claims: list[Claim] = []
        for index_pk in partitions:
            claims += self.claims(watermark, [index_pk])
            while len(claims) >= batch:
                yield claims[:batch]
                claims = claims[batch:]
        if claims:
            yield claims

    def publish(self, watermark: int, claims: list[Claim]) -> CloseOutcome:
        """Publish what was claimed, then mark it emitted and release its state."""
        outcome = CloseOutcome(watermark=watermark)
        # Read after the watermark was stored: a switch after this read hands over at a
        # watermark at or above it, so this run's claims stay ours (versions.switch).
        ownership = self.versions.ownership(self.pipeline.state_version)
        decisions = {
            id(c): ownership.decide(self.trigger.final_at(int(c.result["window_end"])))
            for c in claims if c.result is not None
        }
        publishable = [c for c in claims if decisions.get(id(c)) == Decision.PUBLISH]
        failed = self._send([c.result for c in publishable])  # type: ignore[misc]
        outcome.publish_failures = len(failed)
        done = {id(c) for i, c in enumerate(publishable) if i not in failed}
        finishing: list[Claim] = []
        for claim in claims:
            decision = decisions.get(id(claim))
            if decision == Decision.HOLD:
                outcome.held += 1
                continue  # stays claimed; decided after the switch
            if decision == Decision.PUBLISH and id(claim) not in done:
                continue  # stays CLOSING; the next run publishes it again
            finishing.append(claim)
        # A skipped window is marked emitted too: its result stays in the item, unpublished.
        per_key(finishing, lambda c: c.pk, self._finish_claim, self.concurrency)
        for claim in finishing:
            if decisions.get(id(claim)) == Decision.SKIP:
                outcome.suppressed += 1
            elif claim.result is not None:
                outcome.results.append(claim.result)
            outcome.windows_closed += int(claim.final)
        outcome.results_published = len(done)
        return outcome

    def _finish_claim(self, claim: Claim) -> None:
        if claim.result is not None:
            self.mark_emitted(claim)
        if claim.final:
            self.complete(claim)

    def _send(self, results: list[WindowResult]) -> set[int]:
        """Publish; retry only the entries the sink reports failed. Returns what still
        failed. A call that raises counts as all of its entries failed."""
        pending = list(range(len(results)))
        delay = self.retry_delay_s
        for attempt in range(PUBLISH_ATTEMPTS):
            if not pending:
                break
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                failed = self.sink.publish([results[i] for i in pending])
            except Exception:
                continue  # the same entries again: an idempotency key makes a repeat harmless
            pending = [pending[i] for i in failed]
        return set(pending)

    def publish_results(
        self, results: list[WindowResult], batch: int, outcome: CloseOutcome,
    ) -> bool:
        """Publish `batch` at a time; False when some failed (the run stops there)."""
        failed: set[int] = set()
        for i in range(0, len(results), batch):
            failed |= {i + j for j in self._send(results[i : i + batch])}
        if failed:
            outcome.publish_failures += len(failed)
            return False
        outcome.results_published += len(results)
        outcome.results += results
        return True

    def claims(self, watermark: int, partitions: list[str] | None = None) -> list[Claim]:
        raise NotImplementedError

    def complete(self, claim: Claim) -> None:
        """After the result is out (or there was none): release the window's state."""

    def mark_emitted(self, claim: Claim) -> None:
        try:
            if claim.final:
                self.store.mark_emitted(claim.pk, claim.sk, self.expiry())
            else:
                version = int(claim.result["version"]) if claim.result else 0
                self.store.mark_published(claim.pk, claim.sk, version)
        except ConditionFailedError:
            pass  # marked by a racing closer, or a newer version is on its way

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

    def claims(self, watermark: int, partitions: list[str] | None = None) -> list[Claim]:
        due = sorted(self._due_windows(watermark, partitions or self.index_partitions()))
        return self._claim_many(due, watermark)

    def claim_batches(
        self, watermark: int, partitions: list[str], batch: int
    ) -> Iterator[list[Claim]]:
        """Page through each partition's due panes and claim their windows `batch` at a time.

        A window's panes are visited in index order (close_at), so one key's windows come in
        order, as completing them requires. Completing moves panes in the index while the
        query pages: a pane met again yields only windows already seen.
        """
        chunk: list[tuple[str, int]] = []  # spans partitions: few windows each, one publish
        for index_pk in partitions:
            seen: set[tuple[str, int]] = set()  # a key belongs to one partition
            for pane in self.store.query_open(index_pk, watermark):
                for window in self._due_of_pane(pane, watermark):
                    if window not in seen:
                        seen.add(window)
                        chunk.append(window)
                if len(chunk) >= batch:
                    yield self._claim_many(chunk, watermark)
                    chunk = []
        if chunk:
            yield self._claim_many(chunk, watermark)

    def complete(self, claim: Claim) -> None:
        self._finish(claim.pk, claim.window_start, claim.panes)

    # -- discovery -----------------------------------------------------------------------
    def close_at(self, window_start: int) -> int:
        return self.trigger.final_at(window_start + self.assigner.size_ms)

    def trigger_at(self, window_start: int) -> int:
        """When a window is first published (the trigger's rule)."""
        return self.trigger.first_at(window_start + self.assigner.size_ms)

    def _due_windows(self, watermark: int, partitions: list[str]) -> set[tuple[str, int]]:
        due: set[tuple[str, int]] = set()
        for index_pk in partitions:
            for pane in self.store.query_open(index_pk, watermark):
                due.update(self._due_of_pane(pane, watermark))
        return due

    def _due_of_pane(self, pane: dict[str, Any], watermark: int) -> list[tuple[str, int]]:
        a = self.assigner
        ws = int(pane["next_ws"])
        last = a.last_window_of_pane(keys.start_of_sk(pane["SK"]))
        due: list[tuple[str, int]] = []
        while ws <= last and self.trigger_at(ws) <= watermark:
            due.append((pane["PK"], ws))
            ws += a.slide_ms
        return due

    # -- one window ----------------------------------------------------------------------
    def _panes(self, pk: str, window_start: int) -> list[dict[str, Any]]:
        end = window_start + self.assigner.size_ms
        return self.store.query_range(pk, keys.pane_sk(window_start), keys.pane_sk(end - 1))

    def _claim_many(self, due: list[tuple[str, int]], watermark: int) -> list[Claim]:
        """Claims in the order given; the windows' result items are read in one batch."""
        items = self.store.batch_get([(pk, keys.window_sk(ws)) for pk, ws in due])
        return per_key(
            due, lambda window: window[0],
            lambda w: self._claim(w[0], w[1], watermark, items.get((w[0], keys.window_sk(w[1])))),
            self.concurrency,
        )

    def _claim(
        self, pk: str, window_start: int, watermark: int, existing: dict[str, Any] | None
    ) -> Claim:
        sk = keys.window_sk(window_start)
        final = self.close_at(window_start) <= watermark
        state = existing.get("state") if existing else None
        if state == EMITTED:
            return Claim(pk, sk, window_start, None)
        if existing is not None and state in (CLOSING, PENDING):
            # Claimed by an earlier run that did not finish: publish the same bytes again.
            return Claim(pk, sk, window_start, json.loads(existing["result_json"]),
                         final=state == CLOSING)

        acc: dict[str, Any] | None = None
        count = 0
        if final and self.assigner.pane_ms == self.assigner.size_ms:
            alone = self._freeze_alone(pk, window_start)
            panes = [] if alone is None else [alone]
        else:
            panes = self._panes(pk, window_start)
        for pane in panes:
            if window_start < int(pane["first_ws"]) or window_start < int(pane["next_ws"]):
                continue  # the pane began after this window was final, or is past it
            if final:
                pane_acc, pane_n = self._freeze(pane, window_start)
            else:
                pane_acc, pane_n = pane["acc"], pane["n"]  # may still grow: not frozen
            acc = self.acc.merge(acc, pane_acc)
            count += int(pane_n)
        if count == 0:
            return Claim(pk, sk, window_start, None, final=final, panes=panes)
        if not final and existing is not None and int(existing["n"]) == count:
            return Claim(pk, sk, window_start, None, final=False)  # nothing new since

        version = int(existing["version"]) + 1 if existing else 1
        end = window_start + self.assigner.size_ms
        result = self.result(pk, window_start, end, acc or {}, version=version, final=final)
        claimed = CLOSING if final else PENDING
        result_json = json.dumps(result, separators=(",", ":"))
        winner: dict[str, Any] | None = None
        try:
            if existing is None:
                self.store.create_once({"PK": pk, "SK": sk, "state": claimed,
                                        "result_json": result_json, "n": count,
                                        "version": version})
            else:
                self.store.claim_next_version(pk, sk, claimed, result_json, count, version)
        except ConditionFailedError as lost:
            # Another closer claimed it first: adopt its result, the same bytes for both.
            winner = lost.current
        if winner is not None:
            if winner.get("state") in (EMITTED, PUBLISHED):
                return Claim(pk, sk, window_start, None, final=final, panes=panes)
            return Claim(pk, sk, window_start, json.loads(winner["result_json"]),
                         final=winner.get("state") == CLOSING, panes=panes)
        return Claim(pk, sk, window_start, result, final=final, panes=panes)

    def _freeze_alone(self, pk: str, window_start: int) -> dict[str, Any] | None:
        """A window of one pane (tumbling): freeze the pane without reading it first.

        One request instead of a query and then an update: the claim's read is what sets
        result latency and the close rate on a busy table. The condition is the loop's
        own test in `_claim` (the pane is there, was not frozen for this window, did not
        begin after it and is not past it); whichever way it goes, the store returns the
        pane as it now stands, so `_claim` goes on as if it had read it. None: no pane.
        """
        return self.store.freeze_pane(pk, keys.pane_sk(window_start), window_start, unread=True)

    def _freeze(self, pane: dict[str, Any], window_start: int) -> tuple[Any, Any]:
        """The pane's content for this window, frozen on first sight."""
        acc_attr, n_attr = keys.snapshot_attrs(window_start)
        if acc_attr in pane:
            return pane[acc_attr], pane[n_attr]
        # Only the first freeze applies (closers racing): its snapshot is what we merge.
        item = self.store.freeze_pane(pane["PK"], pane["SK"], window_start)
        if item is None or acc_attr not in item:
            raise StateVanishedError(f"pane {pane['PK']} {pane['SK']} vanished while closing")
        return item[acc_attr], item[n_attr]

    def _finish(
        self, pk: str, window_start: int, panes: list[dict[str, Any]] | None = None
    ) -> None:
        """Move each pane past this window; a pane with no window left leaves the index.
        `panes`: as the claim read them (a pane's `next_ws` changes only here, under the
        condition of `move_pane_on`, so that read is as good as a new one)."""
        a = self.assigner
        following = window_start + a.slide_ms
        for pane in self._panes(pk, window_start) if panes is None else panes:
            current = int(pane["next_ws"])
            if current > window_start:
                continue
            last = following > a.last_window_of_pane(keys.start_of_sk(pane["SK"]))
            try:
                self.store.move_pane_on(
                    pk, pane["SK"], window_start, following,
                    released=list(range(current, following, a.slide_ms)),
                    # A pane with no window left leaves the index.
                    next_check_at=None if last else self.trigger_at(following),
                    expire_at=self.expiry(),
                )
            except ConditionFailedError:
                pass  # moved on already by a racing closer
