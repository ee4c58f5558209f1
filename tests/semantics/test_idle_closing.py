"""A stream that goes quiet still gets its windows closed by the closer's schedule."""

from __future__ import annotations

import json
import uuid

import pytest

from tidegate.spec import Pipeline, parse_pipeline
from tidegate.topology import ENV_CLOCK
from tidegate_dev.local import readback
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.esm import KinesisEventSourceMapping
from tidegate_dev.local.resources import deploy
from tidegate_dev.local.runner import handler_environment, put_events
from tidegate_dev.local.server import endpoint

T0 = 1_800_000_000_000  # processing time at ingest


def _pipeline(advance_when_idle: bool) -> Pipeline:
    return parse_pipeline({
        "name": "idle",
        "source": {"type": "kinesis", "stream": "events"},
        "schema": {"name": "E", "fields": {"k": "string", "t": "integer"}},
        "event_time": "t",
        "key": ["k"],
        "window": {"type": "tumbling", "size": "10s"},
        "watermark": {"delay": "1s", "idle_timeout": "1m",
                      "advance_when_idle": advance_when_idle},
        "aggregates": {"n": {"op": "count"}},
        "sink": {"type": "kinesis", "stream": "results"},
    })


@pytest.mark.parametrize("advance", [True, False])
def test_quiet_stream_closes_by_processing_time(
    monkeypatch: pytest.MonkeyPatch, advance: bool
) -> None:
    pipeline = _pipeline(advance)
    lines = [json.dumps({"k": "a", "t": t}).encode() for t in (1_000, 2_000, 3_000)]
    with endpoint():
        deployment = deploy(pipeline, shards=1, suffix=f"-{uuid.uuid4().hex[:6]}")
        with handler_environment(deployment) as (ingest, closer, _):
            # GIVEN three events of window [0, 10s) ingested at processing time T0
            monkeypatch.setenv(ENV_CLOCK, str(T0))
            put_events(deployment.source_stream, pipeline, lines)
            esm = KinesisEventSourceMapping(deployment.source_stream, ingest.handler)
            while esm.pending():
                esm.deliver_round()
            # WHEN the closer runs before the stream is idle, nothing closes (wm = 2 s)
            early = closer.handler({}, LambdaContext("closer"))
            assert early["windows_closed"] == 0
            # AND when it runs 90 s later with no new records
            monkeypatch.setenv(ENV_CLOCK, str(T0 + 90_000))
            late = closer.handler({}, LambdaContext("closer"))

        results = readback.results(deployment)
    if advance:
        # THEN the idle stream's watermark moved with processing time and the window closed
        assert late["windows_closed"] == 1
        assert [(r["window_start"], r["aggregates"]["n"]) for r in results] == [(0, 3)]
    else:
        # THEN a replay-style pipeline keeps waiting for data
        assert late["windows_closed"] == 0
        assert results == []
