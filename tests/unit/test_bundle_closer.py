"""Closing bundled state (`mini_batch`) on the in-memory store: one progress write per run,
and the races that the per-window writes used to settle."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_ingest_close_in_memory import NOW, Harness, _pipeline, _published
from tests.unit.test_mini_batch import Shard
from tidegate import bundles
from tidegate.bundle_closer import BundleCloser
from tidegate.errors import ConditionFailedError
from tidegate.state import keys
from tidegate.state.memory import MemoryStore

B = NOW - 60_000


def _harness(window: dict[str, Any] | None = None, store: MemoryStore | None = None,
             **overrides: Any) -> Harness:
    overrides.setdefault("watermark", {"delay": "0s"})
    return Harness(_pipeline(window or {"type": "tumbling", "size": "10s"},
                             mini_batch={"allow_latency": "30s"}, **overrides), store)


def _progress(h: Harness) -> dict[str, Any]:
    return h.store.items.get((h.watermarks.pk, bundles.BUNDLED_SK), {})


def _written() -> Harness:
    """One shard's window written: key a at B+1s (window [B, B+10s), final at its
    watermark B+15s) and at B+15s."""
    h = _harness()
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("a", B + 15_000, 2)])
    shard.end_window()
    return h


class CountingStore(MemoryStore):
    """Counts writes by operation."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, int] = {}

    def advance_bundle_progress(self, *args: Any, **kwargs: Any) -> None:
        self.calls["progress"] = self.calls.get("progress", 0) + 1
        super().advance_bundle_progress(*args, **kwargs)


def test_windows_are_published_in_time_order_with_one_progress_write_per_run() -> None:
    store = CountingStore()
    h = _harness(store=store)
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 2_000, 5), ("a", B + 12_000, 2)])
    shard.invoke([("b", B + 25_000, 1)])  # its watermark: B+25s
    shard.end_window()

    # WHEN the closer runs at watermark B+25s
    first = h.close()

    # THEN both windows that ended are out, in one progress write; the third is not due
    assert _published(first.results) == {
        ("a", 0, 10_000): {"n": 1, "total": 1}, ("b", 0, 10_000): {"n": 1, "total": 5},
        ("a", 10_000, 20_000): {"n": 1, "total": 2}}
    assert store.calls == {"progress": 1}
    assert int(_progress(h)["closed"]) == B + 20_000
    # The panes whose windows are all out leave the set; the open one stays.
    assert {int(p) for p in _progress(h)["panes"]} == {B + 20_000}
    # AND a second run publishes nothing again
    assert h.close().results == []


def test_racing_closers_publish_the_same_results_and_one_records_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _written()
    one, two = h.closer(), h.closer()
    assert isinstance(one, BundleCloser)
    watermark = one.current_watermark()
    stale = h.store.get(h.watermarks.pk, bundles.BUNDLED_SK)

    # WHEN two closers both read the progress before either records it
    first = one.close_partitions(watermark, one.index_partitions())
    read = h.store.get
    monkeypatch.setattr(h.store, "get", lambda pk, sk: stale if sk == bundles.BUNDLED_SK
                        else read(pk, sk))
    second = two.close_partitions(watermark, two.index_partitions())
    monkeypatch.undo()

    # THEN both published the window, with the same idempotency key, and the progress moved
    # once (the second's conditional write lost and changed nothing)
    assert [r["idempotency_key"] for r in first.results] == [
        r["idempotency_key"] for r in second.results]
    assert len(first.results) == 1
    assert int(_progress(h)["closed"]) == B + 10_000


def test_a_crash_between_publishing_and_recording_republishes_the_same_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _written()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the closer died here")

    monkeypatch.setattr(h.store, "advance_bundle_progress", crash)
    with pytest.raises(RuntimeError):
        h.close()
    crashed = list(h.sink.published)
    monkeypatch.undo()

    # WHEN the next run comes
    again = h.close()

    # THEN it publishes the same window again, under the same idempotency key, and records it
    assert [r["idempotency_key"] for r in again.results] == [
        r["idempotency_key"] for r in crashed]
    assert int(_progress(h)["closed"]) == B + 10_000


def test_a_window_whose_publish_failed_is_not_recorded() -> None:
    h = _written()
    h.sink.publish = lambda results: list(range(len(results)))  # type: ignore[method-assign]
    closer = h.closer()
    closer.retry_delay_s = 0

    outcome = closer.run()

    assert (outcome.publish_failures, outcome.results_published) == (1, 0)
    assert "closed" not in _progress(h)


def test_a_partial_never_joins_a_window_final_at_its_shards_watermark() -> None:
    # GIVEN sliding windows of 20 s every 10 s, and a shard whose watermark is at B+20s
    # while another shard holds the pipeline at B+5s
    h = _harness({"type": "sliding", "size": "20s", "slide": "10s"})
    shard = Shard(h)
    shard.invoke([("a", B + 20_000, 1)])
    shard.end_window()
    h.watermarks.advance_partition("shardId-000000000009", B + 5_000, B + 5_000, NOW)
    shard.state = {}

    # WHEN an event of pane [B+10s, B+20s) is folded and written: window [B, B+20s) is
    # final at the shard's watermark, window [B+10s, B+30s) is not
    outcome = shard.invoke([("a", B + 12_000, 5)])
    shard.end_window()
    results = _published(h.close(flush=True).results)

    # THEN the event is in the later window only, whichever order the runs came in
    assert outcome.late == 0
    assert ("a", 0, 20_000) not in results
    assert results[("a", 10_000, 30_000)] == {"n": 2, "total": 6}
    assert results[("a", 20_000, 40_000)] == {"n": 1, "total": 1}


def test_a_flush_retried_after_its_transaction_committed_writes_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _harness(watermark={"delay": "1s"})
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("a", B + 15_000, 2)])
    state = shard.state

    # GIVEN the final invocation dies after its transaction, before the watermark moved
    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the ingest died here")

    monkeypatch.setattr(h.watermarks, "advance_partition", crash)
    with pytest.raises(RuntimeError):
        shard.end_window()
    monkeypatch.undo()
    written = {k: v for k, v in h.store.items.items() if k[0].startswith("B#")}

    # WHEN Lambda retries it with the state it had
    shard.state = state
    retried = shard.end_window()

    # THEN no bundle is written again, and the watermark catches up with the flush
    assert retried.aggregated == 0
    assert {k: v for k, v in h.store.items.items() if k[0].startswith("B#")} == written
    mark = h.watermarks.read().partitions["shardId-000000000000"]
    assert mark.watermark == B + 14_000
    assert keys.meta_pk(h.pipeline.name, 1) == h.watermarks.pk


def test_conditional_progress_refuses_a_stale_expectation() -> None:
    store = MemoryStore()
    store.advance_bundle_progress("M#p#v1", "BUNDLED", 10, None, [])
    with pytest.raises(ConditionFailedError):
        store.advance_bundle_progress("M#p#v1", "BUNDLED", 20, None, [])
    store.advance_bundle_progress("M#p#v1", "BUNDLED", 20, 10, [])



def test_updates_publish_a_new_version_only_for_the_keys_a_new_flush_reached() -> None:
    h = _harness(emit="updates", allowed_lateness="5s")
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 2_000, 5)])
    shard.end_window()
    shard.invoke([("c", B + 12_000, 1)])  # the watermark passes [B, B+10s)'s end
    shard.end_window()

    # WHEN the closer runs, then a flush adds to a's window, then the closer runs twice more
    first = h.close()
    shard.invoke([("a", B + 8_000, 2)])  # within the lateness: not late
    shard.end_window()
    second = h.close()
    third = h.close()
    final = h.close(flush=True)

    def versions(outcome: Any) -> dict[tuple[str, int], tuple[int, bool, int]]:
        return {(r["key"]["user"], r["window_start"] - B):
                (r["version"], r["final"], r["aggregates"]["n"]) for r in outcome.results}

    # THEN early versions first; a new one for a alone; nothing when nothing changed; and
    # final versions one above the number of flushes (whether or not an early version of
    # that many went out: c's did not, the run jumped to the end)
    assert versions(first) == {("a", 0): (1, False, 1), ("b", 0): (1, False, 1)}
    assert versions(second) == {("a", 0): (2, False, 2)}
    assert third.results == []
    assert versions(final) == {("a", 0): (3, True, 2), ("b", 0): (2, True, 1),
                               ("c", 10_000): (2, True, 1)}


def test_an_early_version_lost_to_a_crash_comes_again_with_the_same_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _harness(emit="updates", allowed_lateness="5s")
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("c", B + 12_000, 1)])
    shard.end_window()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the closer died here")

    monkeypatch.setattr(h.store, "advance_bundle_progress", crash)
    with pytest.raises(RuntimeError):
        h.close()
    crashed = [r["idempotency_key"] for r in h.sink.published]
    monkeypatch.undo()

    again = h.close()

    assert crashed and [r["idempotency_key"] for r in again.results] == crashed
    assert h.close().results == []
