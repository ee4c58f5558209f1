"""What a window kind costs in DynamoDB writes, counted at the boto3 level."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

import tidegate.aws
from tidegate.spec import parse_pipeline
from tidegate_dev.local import esm, runner

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _pipeline(window: dict[str, Any]) -> Any:
    return parse_pipeline({
        "name": f"cost-{window['type']}",
        "source": {"type": "kinesis", "stream": "events"},
        "schema": {"name": "E", "fields": {"user": "string", "t": "integer", "v": "number"}},
        "event_time": "t",
        "key": ["user"],
        "window": window,
        "watermark": {"delay": "5s"},
        "aggregates": {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}},
        "sink": {"type": "kinesis", "stream": "results"},
    })


def _events(count: int, keys: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    t = 1_700_000_000_000
    lines = []
    for _ in range(count):
        t += rng.randint(0, 300)
        user = f"u{min(keys, int(rng.paretovariate(1.1)))}"
        lines.append(json.dumps({"user": user, "t": t - rng.randint(0, 3_000), "v": 1}).encode())
    return lines


@pytest.fixture
def ingest_writes(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts DynamoDB write requests made while the ingest handler runs."""
    counts: Counter[str] = Counter()
    inside_ingest = {"on": False}
    original_client = tidegate.aws.client

    def counting_client(service: str) -> Any:
        made = original_client(service)
        if service == "dynamodb" and not getattr(made, "_tidegate_counted", False):
            def count(model: Any, **_: Any) -> None:
                if inside_ingest["on"] and model.name in WRITE_OPERATIONS:
                    counts[model.name] += 1

            made.meta.events.register("before-call.dynamodb", count)
            made._tidegate_counted = True
        return made

    monkeypatch.setattr(tidegate.aws, "client", counting_client)
    for module in ("tidegate.state.dynamodb", "tidegate.watermark"):
        mod = __import__(module, fromlist=["client"])
        if hasattr(mod, "client"):
            monkeypatch.setattr(mod, "client", counting_client)

    original_esm = esm.KinesisEventSourceMapping

    class CountingMapping(original_esm):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str, handler: Any, **kwargs: Any) -> None:
            def counted(event: dict[str, Any], context: Any) -> Any:
                inside_ingest["on"] = True
                try:
                    return handler(event, context)
                finally:
                    inside_ingest["on"] = False

            super().__init__(stream, counted, **kwargs)

    monkeypatch.setattr(esm, "KinesisEventSourceMapping", CountingMapping)
    return counts


def test_sliding_5m_by_1m_costs_at_most_1_1x_tumbling_1m(
    ingest_writes: Counter[str], moto_endpoint: str
) -> None:
    # GIVEN the same 1,500 events (60 keys, Zipf-like, a little out of order)
    lines = _events(1_500, 60, seed=3)

    # WHEN a 1-minute tumbling pipeline ingests them
    tumbling = runner.run_pipeline(
        _pipeline({"type": "tumbling", "size": "1m"}), lines, batch_size=250,
        endpoint_url=moto_endpoint,
    )
    tumbling_writes = sum(ingest_writes.values())
    ingest_writes.clear()
    # AND a 5-minute window sliding by 1 minute ingests them
    sliding = runner.run_pipeline(
        _pipeline({"type": "sliding", "size": "5m", "slide": "1m"}), lines, batch_size=250,
        endpoint_url=moto_endpoint,
    )
    sliding_writes = sum(ingest_writes.values())

    # THEN both aggregated every event, and sliding wrote panes, not 5 windows per event
    assert tumbling.summary["aggregated"] == sliding.summary["aggregated"] == 1_500
    assert tumbling_writes > 0
    assert sliding_writes <= 1.1 * tumbling_writes, (sliding_writes, tumbling_writes)
    # A per-window design would pay about size/slide = 5x: make sure we are far from it.
    print(f"ingest writes: tumbling {tumbling_writes}, sliding {sliding_writes}")
    assert sliding_writes < 2 * tumbling_writes
