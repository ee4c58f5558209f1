"""The ingest and the closers end to end on the in-memory store: no moto, no network.

Each test tells one story of the product path (tumbling, sliding, sessions, redelivery, two
closers racing, an ingest write racing a closer); the expected results are written by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import BASE_MS, kinesis_event, line, pipeline_spec, seq
from tidegate import sources
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.bundle_closer import BundleCloser
from tidegate.closer import EMITTED, CloseOutcome, PaneCloser
from tidegate.errors import ConditionFailedError
from tidegate.ingest import BatchOutcome, Ingestor
from tidegate.results import WindowResult
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.session_bundle_closer import SessionBundleCloser
from tidegate.session_closer import SessionCloser
from tidegate.spec import Pipeline, parse_pipeline
from tidegate.state import keys
from tidegate.state.memory import MemoryStore
from tidegate.watermark import WatermarkStore
from tidegate.windows import window_kind
from tidegate.windows.session import SessionState

B = BASE_MS
ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/tg-events"
NOW = B + 60_000  # processing time: every partition that sent anything is active
AGGREGATES = {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}}


class Queue:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send(self, messages: list[dict[str, Any]]) -> list[int]:
        self.messages += messages
        return []


class ListSink:
    max_batch = 500

    def __init__(self) -> None:
        self.published: list[WindowResult] = []

    def publish(self, results: list[WindowResult]) -> list[int]:
        self.published += results
        return []


class Harness:
    """One pipeline's ingest and closers over one in-memory store."""

    def __init__(self, pipeline: Pipeline, store: MemoryStore | None = None) -> None:
        self.pipeline = pipeline
        self.store = store or MemoryStore()
        self.watermarks = WatermarkStore(self.store, pipeline.name, pipeline.state_version)
        self.accumulators = AccumulatorSet(build_aggregates(pipeline))
        self.windows = window_kind(pipeline).state(self.accumulators)
        self.late = Queue()
        self.dead = Queue()
        self.sink = ListSink()
        self.ingestor = Ingestor(
            pipeline=pipeline,
            decoder=JsonDecoder(pipeline, compile_schema(pipeline)),
            windows=self.windows,
            store=self.store,
            watermarks=self.watermarks,
            dead_letters=self.dead,  # type: ignore[arg-type]
            late_output=self.late,  # type: ignore[arg-type]
            expected_partitions=list,
            now_ms=lambda: NOW,
        )
        self._next = 0

    def deliver(self, events: list[tuple[str, int, int]], again: int | None = None) -> BatchOutcome:
        """(user, event time, v) as one Kinesis batch; `again`: redeliver from that sequence
        number on (the records keep their numbers) instead of taking new ones."""
        first = self._next if again is None else again
        records = [(seq(first + i), line(u, t, v)) for i, (u, t, v) in enumerate(events)]
        if again is None:
            self._next += len(events)
        batch = sources.records_of(kinesis_event(records, ARN, arrival_s=NOW / 1000))
        return self.ingestor.process(batch)

    def closer(self) -> PaneCloser | SessionCloser | BundleCloser | SessionBundleCloser:
        """A closer of its own (two calls: two closers racing on the same state)."""
        common: dict[str, Any] = dict(
            pipeline=self.pipeline, accumulators=self.accumulators, store=self.store,
            watermarks=self.watermarks, sink=self.sink, expected_partitions=list,
            now_ms=lambda: NOW, retention_s=3_600,
        )
        if isinstance(self.windows, SessionState):
            if self.pipeline.mini_batch.allow_latency:
                return SessionBundleCloser(sessions=self.windows, **common)
            return SessionCloser(sessions=self.windows, **common)
        if self.pipeline.mini_batch.allow_latency:
            return BundleCloser(assigner=self.windows.assigner, **common)
        return PaneCloser(assigner=self.windows.assigner, **common)

    def close(self, flush: bool = False) -> CloseOutcome:
        return self.closer().run(flush=flush)

    def open_entries(self) -> list[dict[str, Any]]:
        return [entry for p in self.closer().index_partitions()
                for entry in self.store.query_open(p, 2**62)]


def _pipeline(window: dict[str, Any], **overrides: Any) -> Pipeline:
    return parse_pipeline(pipeline_spec(window=window, aggregates=AGGREGATES, **overrides))


def _published(results: list[WindowResult]) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {(r["key"]["user"], r["window_start"] - B, r["window_end"] - B): r["aggregates"]
            for r in results}


def test_tumbling_windows_close_once_the_watermark_passes_their_end() -> None:
    h = Harness(_pipeline({"type": "tumbling", "size": "10s"}))
    # GIVEN two keys' events in [B, B+10s), then an event at B+15s: watermark B+13s
    h.deliver([("a", B + 1_000, 1), ("a", B + 2_000, 2), ("b", B + 3_000, 5)])
    h.deliver([("a", B + 15_000, 7)])

    # WHEN the closer runs
    first = h.close()

    # THEN the first window of each key is published, the later one is still open
    assert _published(first.results) == {
        ("a", 0, 10_000): {"n": 2, "total": 3}, ("b", 0, 10_000): {"n": 1, "total": 5}}
    assert first.windows_closed == 2
    assert [keys.start_of_sk(e["SK"]) - B for e in h.open_entries()] == [10_000]
    window = h.store.get(keys.key_pk(h.pipeline.name, 1, '["a"]'), keys.window_sk(B))
    assert window is not None and window["state"] == EMITTED
    # AND a second run publishes nothing again; the flush publishes the last window
    assert h.close().results == []
    assert _published(h.close(flush=True).results) == {("a", 10_000, 20_000): {"n": 1, "total": 7}}
    assert h.open_entries() == []


def test_a_sliding_window_is_the_merge_of_its_panes() -> None:
    h = Harness(_pipeline({"type": "sliding", "size": "30s", "slide": "10s"}))
    # GIVEN one event in each of three 10 s panes
    outcome = h.deliver([("a", B + 1_000, 1), ("a", B + 12_000, 10), ("a", B + 25_000, 100)])
    assert outcome.groups_written == 3  # one pane item each, not one per window

    # WHEN everything closes
    out = h.close(flush=True)

    # THEN each window holds the events of its three panes
    assert _published(out.results) == {
        ("a", -20_000, 10_000): {"n": 1, "total": 1},
        ("a", -10_000, 20_000): {"n": 2, "total": 11},
        ("a", 0, 30_000): {"n": 3, "total": 111},
        ("a", 10_000, 40_000): {"n": 2, "total": 110},
        ("a", 20_000, 50_000): {"n": 1, "total": 100},
    }
    assert h.open_entries() == []


def test_sessions_merge_when_an_event_bridges_them_and_close_after_the_gap() -> None:
    # (a watermark delay of 30 s: no session is final before the flush)
    h = Harness(_pipeline({"type": "session", "gap": "5s"},
                          watermark={"delay": "30s", "idle_timeout": "1m"}))
    # GIVEN two sessions of one key 7 s apart (gap 5 s), and another key's session
    h.deliver([("a", B + 1_000, 1), ("a", B + 8_000, 10), ("b", B + 1_000, 1000)])
    # WHEN an event between them arrives: it overlaps both, and they become one
    h.deliver([("a", B + 4_500, 100)])
    # AND a later session of "a" starts well past the gap
    h.deliver([("a", B + 30_000, 5)])

    out = h.close(flush=True)

    assert _published(out.results) == {
        ("a", 1_000, 13_000): {"n": 3, "total": 111},
        ("a", 30_000, 35_000): {"n": 1, "total": 5},
        ("b", 1_000, 6_000): {"n": 1, "total": 1000},
    }
    assert out.windows_closed == 3
    assert h.open_entries() == []
    assert h.close(flush=True).results == []


def test_a_redelivered_batch_is_skipped_and_counted_once() -> None:
    h = Harness(_pipeline({"type": "tumbling", "size": "10s"}))
    events = [("a", B + 1_000, 1), ("a", B + 2_000, 2), ("b", B + 11_000, 3)]
    first = h.deliver(events)

    # WHEN Lambda delivers the same records again (same sequence numbers)
    again = h.deliver(events, again=0)

    assert (first.aggregated, first.duplicates_skipped) == (3, 0)
    assert (again.aggregated, again.duplicates_skipped, again.groups_written) == (0, 3, 0)
    assert _published(h.close(flush=True).results) == {
        ("a", 0, 10_000): {"n": 2, "total": 3}, ("b", 10_000, 20_000): {"n": 1, "total": 3}}


def test_two_closers_claiming_one_window_publish_the_same_result() -> None:
    h = Harness(_pipeline({"type": "tumbling", "size": "10s"}))
    h.deliver([("a", B + 1_000, 1), ("a", B + 2_000, 2)])
    first, second = h.closer(), h.closer()
    watermark = first.current_watermark(flush=True)

    # GIVEN the first closer claimed the window and has not published yet
    claims = first.claims(watermark, first.index_partitions())
    # WHEN the second closer runs meanwhile, then the first one publishes
    raced = second.close_partitions(watermark, second.index_partitions())
    late = first.publish(watermark, claims)

    # THEN both publish the first claim's result, the same bytes under the same key
    assert len(raced.results) == len(late.results) == 1
    assert raced.results == late.results == [claims[0].result]
    assert _published(raced.results) == {("a", 0, 10_000): {"n": 2, "total": 3}}
    # AND the window is emitted and its pane released, whichever closer finished first
    assert h.open_entries() == []
    assert h.close(flush=True).results == []


def test_an_ingest_write_that_loses_to_the_closer_judges_its_events_again() -> None:
    h = Harness(_pipeline({"type": "tumbling", "size": "10s"}),
                store=_BeforeFirstWrite())
    h.deliver([("a", B + 1_000, 1)])
    store = h.store
    assert isinstance(store, _BeforeFirstWrite)
    # GIVEN a closer that closes everything between the next batch's read and its write
    store.before = lambda: h.close(flush=True)

    # WHEN that batch adds an event to the window
    outcome = h.deliver([("a", B + 2_000, 2)])

    # THEN the write met the closer's, was judged again on the closed pane, and the event
    # went to the late output: the published window never changes
    assert store.conflicts == 1
    assert (outcome.aggregated, outcome.late) == (0, 1)
    assert [m["reason"] for m in h.late.messages] == ["late"]
    assert _published(h.sink.published) == {("a", 0, 10_000): {"n": 1, "total": 1}}


class _BeforeFirstWrite(MemoryStore):
    """Runs `before` once, just before the first write of an existing item."""

    def __init__(self) -> None:
        super().__init__()
        self.before: Callable[[], Any] | None = None
        self.conflicts = 0

    def write_group(self, item: dict[str, Any], expected_version: int | None) -> None:
        if self.before is not None and expected_version is not None:
            before, self.before = self.before, None
            before()
        try:
            super().write_group(item, expected_version)
        except ConditionFailedError:
            self.conflicts += 1
            raise


def test_updates_publish_an_early_version_then_the_final_one() -> None:
    pipeline = parse_pipeline(pipeline_spec(
        window={"type": "tumbling", "size": "10s"}, aggregates=AGGREGATES, emit="updates",
        allowed_lateness="20s"))
    h = Harness(pipeline)
    h.deliver([("a", B + 1_000, 1)])
    h.deliver([("b", B + 14_000, 0)])  # watermark B+12s: past the end, not the lateness

    early = h.close()
    h.deliver([("a", B + 3_000, 2)])  # accepted late: the window is not final yet
    again = h.close()
    final = h.close(flush=True)

    by_key = [(r["key"]["user"], r["version"], r["final"], r["aggregates"]["n"])
              for r in early.results + again.results + final.results
              if r["window_start"] == B]
    assert by_key == [("a", 1, False, 1), ("a", 2, False, 2), ("a", 3, True, 2)]
