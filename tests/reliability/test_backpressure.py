"""Backpressure: out of time, the ingest reports partial failure instead of timing out; a sink
that refuses results leaves windows CLOSING for the next run. Nothing is lost either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Deployed, deployed, kinesis_event, line, seq
from tidegate.closer import PUBLISH_ATTEMPTS
from tidegate.spec import Pipeline


class RunningOutContext:
    """A Lambda context whose remaining time drops below the ingest's margin after `calls`."""

    def __init__(self, calls: int) -> None:
        self.left = calls
        self.function_name = "tidegate-ingest"
        self.aws_request_id = "test"

    def get_remaining_time_in_millis(self) -> int:
        self.left -= 1
        return 60_000 if self.left >= 0 else 500


@pytest.fixture
def pipe(make_pipeline: Any, moto_url: str) -> Iterator[Deployed]:
    pipeline: Pipeline = make_pipeline()
    with deployed(pipeline, moto_url) as d:
        yield d


def test_out_of_time_reports_the_rest_as_failed_and_the_retry_applies_it_once(
    pipe: Deployed,
) -> None:
    records = [(seq(i), line(user, 1_700_000_000_000 + i, i))
               for i, user in enumerate(["a", "b", "c", "a", "b", "c"], start=1)]
    event = kinesis_event(records, pipe.stream_arn)
    # GIVEN a batch of three keys, and time for only the first group (one look at the clock
    # sets the retry budget, the next lets group a start)
    response = pipe.ingest.handler(event, RunningOutContext(calls=2))
    # THEN the handler returns in time, reporting the first unprocessed record (key b's)
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(2)}]}

    # WHEN Lambda retries from it (records after it, including applied ones, come again)
    retry = kinesis_event(records[1:], pipe.stream_arn)
    assert pipe.ingest.handler(retry, RunningOutContext(calls=100)) == {"batchItemFailures": []}
    pipe.close(flush=True)
    collected = pipe.collect(events_in=len(records))

    # THEN every record counted once: a = 1 + 4, b = 2 + 5, c = 3 + 6
    totals = {r["key"]["user"]: r["aggregates"]["total"] for r in collected.results}
    assert totals == {"a": 5, "b": 7, "c": 9}
    assert collected.summary["aggregated"] == 6
    assert pipe.totals()["duplicates_skipped"] == 1  # record 4 (key a) came again


def test_a_refusing_sink_leaves_windows_closing_until_it_accepts(
    pipe: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = [(seq(1), line("a", 1_700_000_000_000, 3)), (seq(2), line("b", 1_700_000_000_001, 4))]
    pipe.ingest.handler(kinesis_event(records, pipe.stream_arn), RunningOutContext(calls=100))
    closer = pipe.closer.current_closer()
    calls = {"n": 0}
    real_publish = closer.sink.publish

    def refusing(results: list[Any]) -> list[int]:
        calls["n"] += 1
        return list(range(len(results)))  # every entry throttled past retries

    # GIVEN a sink that refuses everything
    monkeypatch.setattr(closer.sink, "publish", refusing)
    first = pipe.close(flush=True)
    assert first["publish_failures"] == 2 and first["windows_closed"] == 0
    # WHEN it accepts again, the next run publishes the same windows
    monkeypatch.setattr(closer.sink, "publish", real_publish)
    second = pipe.close(flush=True)
    assert second["results_published"] == 2
    collected = pipe.collect(events_in=2)
    assert sorted(r["aggregates"]["total"] for r in collected.results) == [3, 4]
    # The refused entries were retried within the first run, then left for the next one.
    assert calls["n"] == PUBLISH_ATTEMPTS


def test_throttling_stops_retrying_when_the_lambda_time_budget_runs_out(
    pipe: Deployed,
) -> None:
    import time

    from tidegate.aws import client
    from tidegate_dev.local.chaos import Chaos
    from tidegate_dev.local.context import LambdaContext

    records = [(seq(1), line("a", 1_700_000_000_000, 1)), (seq(2), line("b", 1_700_000_000_001, 2))]

    def throttle_writes(request: Any, **kwargs: Any) -> Any:
        if kwargs.get("event_name", "").endswith("PutItem"):
            return Chaos._error(request, 400, "ProvisionedThroughputExceededException")
        return None

    # GIVEN DynamoDB throttles every PutItem, and the function has 4.5 s left
    ddb = client("dynamodb")
    ddb.meta.events.register("before-send", throttle_writes)
    try:
        started = time.monotonic()
        response = pipe.ingest.handler(
            kinesis_event(records, pipe.stream_arn), LambdaContext("ingest", timeout_s=4.5)
        )
        elapsed = time.monotonic() - started
    finally:
        ddb.meta.events.unregister("before-send", throttle_writes)
    # THEN it answers in time (botocore alone would back off for up to ~30 s per call),
    # reporting the batch from its first record so Lambda retries it
    assert elapsed < 4.5, elapsed
    assert response == {"batchItemFailures": [{"itemIdentifier": seq(1)}]}
