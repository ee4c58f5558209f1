"""The ingest side of a redrive: every copy of a redriven record is applied at most once."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from tests.support import BASE_MS, SHARD0, aggregates_of, deployed, line, seq
from tidegate import redrive
from tidegate.spec import Pipeline
from tidegate_dev.local import readback
from tidegate_dev.local.runner import run_pipeline

ORIGINAL = {"partition": SHARD0, "position": seq(2), "partition_key": "pk", "arrival_ms": 1}


def _copy(payload: bytes, original: dict[str, Any] = ORIGINAL) -> bytes:
    rid = redrive.redrive_id("tg-test", original["partition"], original["position"])
    return redrive.wrap(payload, rid, original)


def _result_counts(d: Any) -> dict[str, int]:
    return {r["key"]["user"]: r["aggregates"]["n"] for r in readback.results(d.deployment)}


def test_envelope_round_trip_and_plain_records_untouched() -> None:
    wrapped = _copy(b'{"a": 1}')
    assert redrive.unwrap_bytes(wrapped) == (
        redrive.redrive_id("tg-test", SHARD0, seq(2)), ORIGINAL, b'{"a": 1}')
    assert redrive.unwrap_bytes(b'{"a": 1}') is None
    # A stable id from the original coordinates; another record gets another id.
    assert redrive.redrive_id("tg-test", SHARD0, seq(2)) != redrive.redrive_id(
        "tg-test", SHARD0, seq(3))


def test_copies_of_a_redriven_record_apply_once(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    with deployed(make_pipeline(), moto_url) as d:
        fixed = line("u1", BASE_MS + 1_000, 5)
        # GIVEN a redriven record put twice (an interrupted redrive, run again), the two
        # copies in one batch, and a third copy in a later batch
        d.deliver([(seq(10), line("u1", BASE_MS, 1)), (seq(11), _copy(fixed)),
                   (seq(12), _copy(fixed)), (seq(13), line("u2", BASE_MS, 1))])
        d.deliver([(seq(14), _copy(fixed)), (seq(15), line("u1", BASE_MS + 2_000, 1))])
        # AND the first batch redelivered whole (positions at or below the marks)
        d.deliver([(seq(10), line("u1", BASE_MS, 1)), (seq(11), _copy(fixed)),
                   (seq(12), _copy(fixed)), (seq(13), line("u2", BASE_MS, 1))])
        totals = d.totals()
        d.close(flush=True)
        # THEN the record counts once in its window, and every other copy is a duplicate
        assert _result_counts(d) == {"u1": 3, "u2": 1}
        assert totals["aggregated"] == 4
        assert totals["duplicates_skipped"] == 2 + 4
        assert totals["dead_lettered"] == 0


def test_a_redriven_record_that_fails_again_keeps_its_origin(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    with deployed(make_pipeline(), moto_url) as d:
        bad = b'{"user": "u1", "ts": "not a time", "v": 1}'
        d.deliver([(seq(20), _copy(bad))])
        dead = readback.drain_queue(d.deployment.dlq_url)
        assert len(dead) == 1
        message = json.loads(dead[0])
        assert message["reason"] == "invalid_timestamp"
        assert message["source"]["position"] == seq(20)
        assert message["redrive_of"] == ORIGINAL
        # The dead letter holds the record itself, not the envelope.
        assert base64.b64decode(message["data_b64"]) == bad
        # Counted as the record it came from (one record, whatever its copies).
        assert list(readback.distinct_records(dead)) == [(SHARD0, seq(2))]


def test_copies_apply_once_under_chaos(
    moto_url: str, make_pipeline: Callable[..., Pipeline]
) -> None:
    """Crashes between and after the writes, lost responses and duplicate deliveries: the
    copies of a redriven record still count once, as the record itself does in a clean run."""
    pipeline = make_pipeline()
    events = [line(f"u{i % 3}", BASE_MS + 700 * i, i) for i in range(30)]
    fixed = [line("u1", BASE_MS + 3_100, 100), line("u2", BASE_MS + 9_100, 200)]
    origins = [dict(ORIGINAL, position=seq(90 + i)) for i in range(len(fixed))]
    copies = [_copy(record, origin) for record, origin in zip(fixed, origins, strict=True)]
    # One shard: the copies meet the watermark exactly where the records do in the clean run.
    clean = run_pipeline(pipeline, events[:10] + fixed + events[10:], batch_size=7,
                         endpoint_url=moto_url)
    # Three copies of each: the second while their windows are open, the third once final.
    noisy = events[:10] + copies + events[10:13] + copies[::-1] + events[13:] + copies
    for seed in (3, 11):
        run = run_pipeline(pipeline, noisy, batch_size=7, endpoint_url=moto_url,
                           chaos_seed=seed)
        assert aggregates_of(run.results) == aggregates_of(clean.results), seed
        assert run.summary["aggregated"] == clean.summary["aggregated"] == 32
        assert run.summary["dead_lettered"] == 0
        # The later copies are not late: they are duplicates, whatever the watermark.
        assert run.summary["late"] == clean.summary["late"]
        assert run.summary["duplicates_skipped"] >= 4
        assert run.chaos, "no fault injected"
