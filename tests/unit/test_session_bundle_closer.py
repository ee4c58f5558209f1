"""Sessions with `mini_batch` on the in-memory store: fragments merged in the order of the
watermark they were judged at, one progress write per run, published sessions independent
of when the closer ran."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_ingest_close_in_memory import NOW, Harness, _pipeline
from tests.unit.test_mini_batch import Shard
from tidegate import bundles
from tidegate.partials import MIN_SESSION_BUCKET_MS
from tidegate.session_bundle_closer import SessionBundleCloser
from tidegate.state.memory import MemoryStore

B = NOW - 3_600_000
B = B - B % MIN_SESSION_BUCKET_MS  # buckets start on the minute: B is one


def _harness(store: MemoryStore | None = None, **overrides: Any) -> Harness:
    overrides.setdefault("watermark", {"delay": "0s"})
    return Harness(_pipeline({"type": "session", "gap": "3s"},
                             mini_batch={"allow_latency": "30s"}, **overrides), store)


def _published(results: list[Any]) -> dict[tuple[str, int, int], dict[str, Any]]:
    return {(r["key"]["user"], r["window_start"] - B, r["window_end"] - B):
            {"n": r["aggregates"]["n"], "total": r["aggregates"]["total"]} for r in results}


def _progress(h: Harness) -> dict[str, Any]:
    return h.store.items.get((h.watermarks.pk, bundles.BUNDLED_SK), {})


def _written_in_three_flushes(h: Harness, close_between: bool) -> list[Any]:
    """Key a at B+1s (session [B+1s, B+4s), final at watermark B+4s); then key b at B+5s
    moves the shard's watermark to B+5s; then key a at B+3.5s, which overlaps a's first
    session but is judged at B+5s, where that session is final."""
    shard = Shard(h)
    published: list[Any] = []
    for events in ([("a", B + 1_000, 1)], [("b", B + 5_000, 5)], [("a", B + 3_500, 2)]):
        outcome = shard.invoke(events)
        assert outcome.late == 0
        shard.end_window()
        if close_between:
            published += h.close().results
    published += h.close(flush=True).results
    return published


@pytest.mark.parametrize("close_between", [False, True], ids=["closed-once", "closed-each-flush"])
def test_a_fragment_never_extends_a_session_final_where_it_was_judged(close_between: bool) -> None:
    h = _harness()

    published = _written_in_three_flushes(h, close_between)

    # THEN a's late fragment starts a session of its own (as without mini-batch, where the
    # first session is frozen by then), whenever the closer ran, and each is published once
    assert sorted((r["key"]["user"], r["window_start"] - B, r["window_end"] - B,
                   r["aggregates"]["n"]) for r in published) == [
        ("a", 1_000, 4_000, 1), ("a", 3_500, 6_500, 1), ("b", 5_000, 8_000, 1)]


def test_fragments_of_one_session_from_several_flushes_merge() -> None:
    h = _harness(watermark={"delay": "2s"})
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("a", B + 3_000, 2)])
    shard.end_window()
    shard.invoke([("a", B + 5_500, 4)])  # within the gap of B+3s: the same session
    shard.end_window()

    results = _published(h.close(flush=True).results)

    assert results == {("a", 1_000, 8_500): {"n": 3, "total": 7}}


def test_one_progress_write_per_run_and_nothing_published_twice() -> None:
    calls: list[int] = []

    class Counting(MemoryStore):
        def advance_bundle_progress(self, *args: Any, **kwargs: Any) -> None:
            calls.append(args[2])
            super().advance_bundle_progress(*args, **kwargs)

    h = _harness(store=Counting())
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 2_000, 5), ("c", B + 20_000, 1)])
    shard.end_window()  # the shard's watermark: B+20s

    first = h.close()

    assert _published(first.results) == {("a", 1_000, 4_000): {"n": 1, "total": 1},
                                         ("b", 2_000, 5_000): {"n": 1, "total": 5}}
    assert calls == [B + 20_000]
    assert h.close().results == []
    assert calls == [B + 20_000]  # nothing new: no write


def test_a_crash_between_publishing_and_recording_republishes_the_same_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = _harness()
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 9_000, 1)])
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
    assert int(_progress(h)["closed"]) == B + 9_000


def test_racing_closers_publish_the_same_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    h = _harness()
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 9_000, 1)])
    shard.end_window()
    one, two = h.closer(), h.closer()
    assert isinstance(one, SessionBundleCloser)
    watermark = one.current_watermark()
    stale = h.store.get(h.watermarks.pk, bundles.BUNDLED_SK)

    first = one.close_partitions(watermark, one.index_partitions())
    read = h.store.get
    monkeypatch.setattr(h.store, "get", lambda pk, sk: stale if sk == bundles.BUNDLED_SK
                        else read(pk, sk))
    second = two.close_partitions(watermark, two.index_partitions())

    assert [r["idempotency_key"] for r in first.results] == [
        r["idempotency_key"] for r in second.results]
    assert len(first.results) == 1


def test_buckets_leave_the_set_once_published_and_open_sessions_keep_their_bundles() -> None:
    h = _harness()
    shard = Shard(h)
    # a: one session spanning two buckets, still open; b: closed within the first bucket
    shard.invoke([("b", B + 1_000, 1), ("a", B + 50_000, 1), ("a", B + 52_000, 1),
                  ("a", B + 54_000, 1), ("a", B + 56_000, 1), ("a", B + 58_000, 1)])
    shard.end_window()
    shard.invoke([("a", B + 60_500, 1), ("a", B + 62_000, 1)])  # a fragment in the next bucket
    shard.end_window()  # watermark B+62s
    for key, item in h.store.items.items():
        if key[0].startswith("B#"):
            item["expire_at"] = NOW // 1000 + 3_600  # about to expire

    h.close()

    # THEN b is out; the first bucket stays (a's open session draws on it) and its bundles,
    # like the second bucket's, are kept alive
    assert {int(b) for b in _progress(h)["panes"]} == {B, B + 60_000}
    expiries = [int(i["expire_at"]) for k, i in h.store.items.items() if k[0].startswith("B#")]
    assert min(expiries) >= NOW // 1000 + bundles.BUNDLE_RETENTION_S

    # WHEN a's session is final too, both its buckets leave the set (c's stays: c is open)
    shard.invoke([("c", B + 130_000, 1)])
    shard.end_window()
    h.close()
    assert {int(b) for b in _progress(h)["panes"]} == {B + 120_000}


def test_updates_give_a_session_a_new_version_only_when_a_flush_reached_it() -> None:
    h = _harness(emit="updates", allowed_lateness="10s")
    shard = Shard(h)
    shard.invoke([("a", B + 1_000, 1), ("b", B + 2_000, 5), ("c", B + 8_000, 1)])
    shard.end_window()  # watermark B+8s: a's and b's sessions ended, none is final

    first = h.close()
    shard.invoke([("a", B + 3_500, 2)])  # joins a's session (it ends at B+4s, final at B+14s)
    shard.end_window()
    second = h.close()
    final = h.close(flush=True)

    def versions(outcome: Any) -> dict[tuple[str, int, int], tuple[int, bool, int]]:
        return {(r["key"]["user"], r["window_start"] - B, r["window_end"] - B):
                (r["version"], r["final"], r["aggregates"]["n"]) for r in outcome.results}

    assert versions(first) == {("a", 1_000, 4_000): (1, False, 1),
                               ("b", 2_000, 5_000): (1, False, 1)}
    assert versions(second) == {("a", 1_000, 6_500): (2, False, 2)}
    assert versions(final) == {("a", 1_000, 6_500): (3, True, 2),
                               ("b", 2_000, 5_000): (2, True, 1),
                               ("c", 8_000, 11_000): (2, True, 1)}
