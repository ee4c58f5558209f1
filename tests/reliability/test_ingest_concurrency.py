"""Ingest with several conditional writes of a batch in flight: the same state as one at a
time, and a failed write fails only its own group's records."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import BASE_MS, FaultOnce, aggregates_of, deployed, line, mentions, seq
from tidegate.runtime import Runtime
from tidegate.spec import Pipeline

AGGREGATES = {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}}
USERS = [f"u{i}" for i in range(12)]


@pytest.fixture
def pipeline(make_pipeline: Any) -> Pipeline:
    return make_pipeline(aggregates=AGGREGATES)


def test_concurrent_group_writes_fail_only_the_failed_group_and_redelivery_completes(
    moto_url: str, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEGATE_WRITE_CONCURRENCY", "4")
    batch = [(seq(i), line(user, BASE_MS + 1_000 + i, i)) for i, user in enumerate(USERS)]
    with deployed(pipeline, moto_url) as env:
        assert env.ingest._ingestor().write_concurrency == 4
        # GIVEN the write of u5's pane fails once
        fault = FaultOnce("dynamodb", lambda op, params: (
            op == "PutItem" and mentions(params, '["u5"]')
        ))
        first = env.deliver(batch)
        # WHEN Lambda redelivers from the failed record on
        again = env.deliver(batch[5:])
        env.close(flush=True)
        out = env.collect(events_in=len(batch))
        totals = env.totals()

    assert fault.fired == 1
    assert first == {"batchItemFailures": [{"itemIdentifier": seq(5)}]}
    assert again == {"batchItemFailures": []}
    assert totals["duplicates_skipped"] == 6  # u6..u11 were written the first time
    assert aggregates_of(out.results) == {
        (user, BASE_MS): {"n": 1, "total": i} for i, user in enumerate(USERS)
    }


def test_a_bad_write_concurrency_is_named() -> None:
    runtime = Runtime.__new__(Runtime)
    runtime.env = {"TIDEGATE_WRITE_CONCURRENCY": "many"}
    with pytest.raises(RuntimeError, match="TIDEGATE_WRITE_CONCURRENCY must be a whole "
                                           "number >= 1, not 'many'"):
        _ = runtime.write_concurrency
