"""Mini-batch pre-aggregation on the in-memory store: what a shard's tumbling-window state
carries, when it is written, and that nothing is folded or written twice."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support import kinesis_event, line, seq
from tests.unit.test_ingest_close_in_memory import ARN, NOW, Harness, _pipeline, _published
from tidegate import bundles, mini_batch, redrive, sources
from tidegate.ingest import BatchOutcome
from tidegate.mini_batch import Buffer, Partial
from tidegate.watermark import WatermarkStore

B = NOW - 60_000
TUMBLING = {"type": "tumbling", "size": "10s"}


class Shard:
    """One shard's invocations as the event source mapping makes them, with its state."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.state: dict[str, str] | None = {}
        self.next = 0

    def invoke(self, events: list[tuple[str, int, int]], final: bool = False,
               again: int | None = None) -> BatchOutcome:
        first = self.next if again is None else again
        records = [(seq(first + i), line(u, t, v)) for i, (u, t, v) in enumerate(events)]
        if again is None:
            self.next += len(events)
        batch = sources.records_of(kinesis_event(records, ARN, arrival_s=NOW / 1000))
        outcome, self.state = self.h.ingestor.process_window(batch, self.state, final)
        return outcome

    def end_window(self) -> BatchOutcome:
        return self.invoke([], final=True)


def _harness(**overrides: Any) -> Harness:
    return Harness(_pipeline(TUMBLING, mini_batch={"allow_latency": "30s"}, **overrides))


def _bundled(h: Harness) -> dict[str, int]:
    """Events in bundles, by key."""
    counts: dict[str, int] = {}
    for (pk, _), item in h.store.items.items():
        if pk.startswith("B#"):
            for row in bundles.rows_of(item):
                counts[row.key] = counts.get(row.key, 0) + row.n
    return counts


def test_the_state_round_trips_partials_marks_and_decimals() -> None:
    buffer = Buffer(
        through={"shard-0": "0" * 60 + "1234"}, top={"shard-0": B + 5},
        partials={('["a"]', B): Partial({"n": 3, "total": [Decimal("1.25"), False]}, 3, B, B + 5)},
    )

    state = buffer.encode()

    assert set(state) == {"tg"} and isinstance(state["tg"], str)  # a map of strings
    assert Buffer.decode(state) == buffer
    assert Buffer.decode({}) == Buffer() == Buffer.decode(None)


def test_batches_are_folded_and_written_once_at_the_end_of_the_window() -> None:
    h = _harness()
    shard = Shard(h)
    # GIVEN two batches of one window: nothing written while they are folded
    first = shard.invoke([("a", B + 1_000, 1), ("b", B + 2_000, 5)])
    second = shard.invoke([("a", B + 3_000, 2)])
    assert (first.buffered, second.buffered, first.aggregated) == (2, 1, 0)
    assert _bundled(h) == {}

    # WHEN the window's final invocation comes
    final = shard.end_window()

    # THEN one bundle holds both keys' partials, and the state is handed back empty
    assert (final.aggregated, final.groups_written, shard.state) == (3, 1, {})
    assert _bundled(h) == {'["a"]': 2, '["b"]': 1}
    assert _published(h.close(flush=True).results) == {
        ("a", 0, 10_000): {"n": 2, "total": 3}, ("b", 0, 10_000): {"n": 1, "total": 5}}


def test_a_redelivered_record_is_folded_once_and_a_retried_flush_writes_nothing_again() -> None:
    h = _harness()
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("a", B + 2_000, 2)])
    # WHEN the same records come again (Lambda processes records at least once)
    again = shard.invoke([("a", B + 1_000, 1), ("a", B + 2_000, 2)], again=0)
    assert (again.duplicates_skipped, again.buffered) == (2, 0)
    state = shard.state
    shard.end_window()
    written = dict(h.store.items)

    # AND the final invocation runs again with the same state (it failed after writing)
    shard.state = state
    retried = shard.end_window()

    # THEN nothing more was written, and the bundles hold each event once
    assert (retried.aggregated, retried.groups_written) == (0, 0)
    assert h.store.items == written
    assert _bundled(h) == {'["a"]': 2}


def test_records_already_written_by_an_earlier_window_are_skipped() -> None:
    h = _harness()
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1)])
    shard.end_window()
    # WHEN a later window is handed a record the earlier one wrote
    shard.state = {}
    outcome = shard.invoke([("a", B + 1_000, 1)], again=0)
    shard.end_window()

    # THEN it counts as a duplicate
    assert outcome.duplicates_skipped == 1
    assert _bundled(h) == {'["a"]': 1}


def test_the_shard_watermark_moves_only_when_its_partials_are_written() -> None:
    h = _harness(watermark={"delay": "1s"})
    shard = Shard(h)
    shard.invoke([("a", B + 15_000, 1)])
    marks = h.watermarks.read().partitions
    assert marks["shardId-000000000000"].watermark < B  # alive, but held

    shard.end_window()

    mark = h.watermarks.read().partitions["shardId-000000000000"]
    assert mark.watermark == B + 14_000
    assert mark.position == seq(0).zfill(64)  # written through its last record


def test_lateness_is_judged_against_the_shards_own_watermark() -> None:
    h = _harness(watermark={"delay": "0s"})
    shard = Shard(h)
    shard.invoke([("a", B + 25_000, 1)])
    shard.end_window()  # this shard's watermark: B+25s
    # GIVEN another shard still at B+5s: the pipeline watermark is there
    WatermarkStore(h.store, h.pipeline.name, 1).advance_partition(
        "shardId-000000000001", B + 5_000, B + 5_000, NOW)
    shard.state = {}

    # WHEN this shard folds an event of window [B, B+10s), final at its own watermark
    outcome = shard.invoke([("a", B + 2_000, 3)])

    # THEN it is late at once (the pipeline watermark could pass the window before the
    # partial is written), and says at which watermark
    assert (outcome.late, outcome.buffered) == (1, 0)
    (message,) = h.late.messages
    assert message["reason"] == "late" and str(B + 25_000) in message["detail"]


def test_a_partial_whose_windows_closed_before_it_was_written_goes_to_the_late_queue() -> None:
    h = _harness(watermark={"delay": "0s"})
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 4), ("a", B + 2_000, 5)])
    # GIVEN the pipeline watermark passed the window meanwhile (a shard taken for idle)
    h.watermarks.advance_pipeline(B + 30_000)

    # WHEN the window is written
    outcome = shard.end_window()

    # THEN the partial is not lost: the late queue has it, with its count
    assert (outcome.late, outcome.aggregated) == (2, 0)
    (message,) = h.late.messages
    assert (message["reason"], message["events"], message["key"]) == ("late", 2, '["a"]')


def test_poison_records_are_dead_lettered_at_once() -> None:
    h = _harness()
    shard = Shard(h)
    batch = sources.records_of(kinesis_event(
        [(seq(0), b"{not json"), (seq(1), line("a", B + 1_000, 1))], ARN, arrival_s=NOW / 1000))

    outcome, shard.state = h.ingestor.process_window(batch, {}, False)

    assert (outcome.dead_lettered, outcome.buffered) == (1, 1)
    assert [m["reason"] for m in h.dead.messages] == ["invalid_json"]


def test_a_state_near_lambdas_bound_is_written_early(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mini_batch, "FLUSH_STATE_BYTES", 10)
    h = _harness()
    shard = Shard(h)

    outcome = shard.invoke([("a", B + 1_000, 1)])

    # The partial was written now; the state keeps only how far the shard was folded.
    assert outcome.aggregated == 1
    assert Buffer.decode(shard.state).partials == {}
    assert Buffer.decode(shard.state).through


def test_a_dead_letter_redriven_twice_is_folded_once() -> None:
    h = _harness()
    shard = Shard(h)
    copy = redrive.wrap(line("a", B + 1_000, 7), "r1", {"partition": "s", "position": "1"})

    def deliver(first: int, copies: int, final: bool = False) -> BatchOutcome:
        records = [(seq(first + i), copy) for i in range(copies)]
        batch = sources.records_of(kinesis_event(records, ARN, arrival_s=NOW / 1000))
        outcome, shard.state = h.ingestor.process_window(batch, shard.state, final)
        return outcome

    # GIVEN two copies of one redriven record in a window, and a third in the next
    first = deliver(0, 2, final=True)
    shard.state = {}
    later = deliver(2, 1, final=True)

    # THEN it was folded and written once: the second copy by the buffer's ids, the third
    # by the ledger entry the first flush wrote with its bundles
    assert (first.aggregated, first.duplicates_skipped) == (1, 1)
    assert (later.aggregated, later.duplicates_skipped) == (0, 1)
    assert _bundled(h) == {'["a"]': 1}
