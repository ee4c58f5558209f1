"""Helpers shared by the test suite (plain functions; fixtures live in conftest.py).

Nothing here computes an expected value: tests write their expectations by hand.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

# 2023-11-14T22:13:20Z: a multiple of 10 s, so 10 s windows start exactly here.
BASE_MS = 1_700_000_000_000
SHARD0 = "shardId-000000000000"

_BASE_SPEC: dict[str, Any] = {
    "name": "tg-test",
    "source": {"type": "kinesis", "stream": "tg-events"},
    "format": "json",
    "schema": {
        "name": "Reading",
        "version": 1,
        "fields": {"user": "string", "ts": "timestamp", "v": "number"},
    },
    "event_time": "ts",
    "key": ["user"],
    "window": {"type": "tumbling", "size": "10s"},
    "watermark": {"delay": "2s", "idle_timeout": "1m"},
    "allowed_lateness": "0s",
    "aggregates": {
        "n": {"op": "count"},
        "total": {"op": "sum", "field": "v"},
        "hi": {"op": "max", "field": "v"},
        "lo": {"op": "min", "field": "v"},
        "mean": {"op": "avg", "field": "v"},
    },
    "emit": "final",
    "sink": {"type": "kinesis", "stream": "tg-results"},
}


def pipeline_spec(**overrides: Any) -> dict[str, Any]:
    """The test pipeline as a document; each keyword replaces one top-level section."""
    spec = copy.deepcopy(_BASE_SPEC)
    spec.update(copy.deepcopy(overrides))
    return spec


def line(user: str, ts: int | str, v: int | float) -> bytes:
    """One event as a JSONL line (bytes, as the runner sends it)."""
    return json.dumps({"user": user, "ts": ts, "v": v}).encode("utf-8")


def seq(i: int) -> str:
    """A Kinesis-shaped sequence number (56 digits) that orders as `i` does."""
    return f"49590338271490256608559692538361571095921575989136{i:06d}"


def kinesis_event(
    records: list[tuple[str, bytes | str]],
    stream_arn: str,
    shard: str = SHARD0,
    arrival_s: float = BASE_MS / 1000,
) -> dict[str, Any]:
    """A Lambda Kinesis event as AWS shapes it. `records`: (sequence number, data); bytes
    are base64-encoded here, a str is taken as the (possibly invalid) base64 text itself."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "pk",
                    "sequenceNumber": sequence,
                    "data": data if isinstance(data, str)
                    else base64.b64encode(data).decode("ascii"),
                    "approximateArrivalTimestamp": arrival_s,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/tidegate-ingest",
                "awsRegion": "us-east-1",
                "eventSourceARN": stream_arn,
            }
            for sequence, data in records
        ]
    }


def by_window(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Results keyed by (user, window_start); fails on two different results for one window."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for result in results:
        slot = (result["key"]["user"], result["window_start"])
        assert out.get(slot, result) == result, f"two different results for {slot}"
        out[slot] = result
    return out


def aggregates_of(results: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    return {slot: r["aggregates"] for slot, r in by_window(results).items()}


def assert_same_typed(actual: Any, expected: Any) -> None:
    """Equal, and integers are integers where expected (1 == 1.0 would hide a float)."""
    assert actual == expected
    assert _types(actual) == _types(expected), f"{actual!r} vs {expected!r}"


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_types(v) for v in value]
    return type(value).__name__


def assert_accounting(summary: dict[str, int]) -> None:
    """CONTRACT.md: every record is exactly one of aggregated, late, dead-lettered."""
    assert summary["events_in"] == (
        summary["aggregated"] + summary["late"] + summary["dead_lettered"]
    ), summary


# -- driving the handlers directly ----------------------------------------------------------
@dataclass
class Deployed:
    """One deployed pipeline on the moto server, with cold-started handler modules."""

    deployment: Any  # tidegate_dev.local.resources.LocalDeployment
    ingest: Any  # functions.ingest.handler module
    closer: Any  # functions.closer.handler module
    observed: Any  # tidegate_dev.local.runner.Observed

    @property
    def stream_arn(self) -> str:
        return f"arn:aws:kinesis:us-east-1:123456789012:stream/{self.deployment.source_stream}"

    def deliver(self, records: list[tuple[str, bytes | str]]) -> dict[str, Any]:
        from tidegate_dev.local.context import LambdaContext

        event = kinesis_event(records, self.stream_arn)
        return self.ingest.handler(event, LambdaContext("tidegate-ingest"))

    def close(self, flush: bool = False) -> dict[str, Any]:
        from tidegate_dev.local.context import LambdaContext

        return self.closer.handler({"flush": flush}, LambdaContext("tidegate-closer"))

    def totals(self) -> dict[str, int]:
        return dict(self.observed.totals)

    def collect(self, events_in: int) -> Collected:
        """Read back everything once (queues are drained)."""
        from tidegate_dev.local import readback

        results = readback.results(self.deployment)
        dead = readback.distinct_records(readback.drain_queue(self.deployment.dlq_url))
        late = readback.distinct_records(readback.drain_queue(self.deployment.late_url))
        summary = {
            "events_in": events_in,
            "aggregated": readback.aggregated_count(self.deployment),
            "late": len(late),
            "dead_lettered": len(dead),
        }
        return Collected(summary, results, list(dead.values()), list(late.values()))


@dataclass
class Collected:
    summary: dict[str, int]
    results: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    late: list[dict[str, Any]]


@contextmanager
def deployed(pipeline: Any, url: str, shards: int = 1) -> Iterator[Deployed]:
    """Deploy `pipeline` under a unique suffix on `url` and set the handlers' environment."""
    from tidegate_dev.local.resources import deploy
    from tidegate_dev.local.runner import handler_environment
    from tidegate_dev.local.server import endpoint

    with endpoint(url):
        deployment = deploy(pipeline, shards, suffix=f"-{uuid.uuid4().hex[:8]}")
        with handler_environment(deployment) as (ingest, closer, observed):
            yield Deployed(deployment, ingest, closer, observed)


# -- fault injection --------------------------------------------------------------------------
class FaultOnce:
    """Fail the first AWS call (of a cached tidegate client) that `matches` its parameters.

    Hooks botocore's `before-parameter-build` event, so it fails the call the code under test
    makes, whichever module makes it; later matching calls go through.
    """

    def __init__(self, service: str, matches: Callable[[str, dict[str, Any]], bool]) -> None:
        from tidegate.aws import client

        self.matches = matches
        self.fired = 0
        client(service).meta.events.register(f"before-parameter-build.{service}", self._hook)

    def _hook(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self.fired == 0 and self.matches(model.name, params):
            self.fired += 1
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "injected fault"}},
                model.name,
            )


def mentions(params: Any, needle: str) -> bool:
    """True when any string inside the request parameters contains `needle`."""
    if isinstance(params, str):
        return needle in params
    if isinstance(params, dict):
        return any(mentions(v, needle) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(mentions(v, needle) for v in params)
    return False
