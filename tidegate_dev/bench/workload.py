"""The standard workload: the seed's UserEvent, Zipf-distributed keys, and the pipeline
variants (one per window type) every section measures."""

from __future__ import annotations

import base64
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tidegate.spec import Pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
CLICKSTREAM = ROOT / "pipelines" / "clickstream.yaml"
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: in the past, so no future-skew rejects

# The standard workload.
KEYS = 10_000
ZIPF_S = 1.1
WINDOWS: dict[str, dict[str, Any]] = {
    "tumbling": {"type": "tumbling", "size": "1m"},
    "sliding": {"type": "sliding", "size": "5m", "slide": "1m"},
    "session": {"type": "session", "gap": "30s"},
}


@dataclass(frozen=True)
class Workload:
    events: int
    keys: int = KEYS
    zipf_s: float = ZIPF_S
    # Event time advances this much per event on average: 1 ms is 1,000 events/s, one
    # Kinesis shard's record limit.
    spacing_ms: float = 1.0
    # Out of order by up to this much (well inside the seed's 5 s watermark delay).
    jitter_ms: int = 2_000
    purchase_share: float = 0.1
    seed: int = 8

    def lines(self) -> list[bytes]:
        return generate(self)


def _zipf_cumulative(keys: int, s: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, keys + 1)))


def generate(w: Workload) -> list[bytes]:
    """UserEvent JSON lines: `userId` Zipf(s) over `keys`, ints for clicks, 2-decimal floats
    for purchases (so the exact-Decimal sum path is exercised as in the seed)."""
    rng = random.Random(w.seed)
    users = rng.choices(range(1, w.keys + 1), cum_weights=_zipf_cumulative(w.keys, w.zipf_s),
                        k=w.events)
    lines: list[bytes] = []
    for i, user in enumerate(users):
        t = BASE_MS + int(i * w.spacing_ms) - rng.randint(0, w.jitter_ms)
        purchase = rng.random() < w.purchase_share
        event = {
            "userId": f"u{user}",
            "timestamp": t,
            "action": "purchase" if purchase else "click",
            "value": round(rng.uniform(5, 120), 2) if purchase else 1,
        }
        lines.append(json.dumps(event, separators=(",", ":")).encode("utf-8"))
    return lines


def pipeline_data(window: str) -> dict[str, Any]:
    data = yaml.safe_load(CLICKSTREAM.read_text())
    data["name"] = f"bench-{window}"
    data["window"] = dict(WINDOWS[window])
    return data


def pipeline(window: str) -> Pipeline:
    return parse_pipeline(pipeline_data(window), source=str(CLICKSTREAM))


def kinesis_event(lines: list[bytes], first_sequence: int, shard: str = "shardId-000000000000",
                  arrival_s: float = BASE_MS / 1000 + 86_400) -> dict[str, Any]:
    """A Lambda Kinesis event as the event source mapping shapes it (base64 data)."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": "bench",
                    "sequenceNumber": str(first_sequence + i),
                    "data": base64.b64encode(line).decode("ascii"),
                    "approximateArrivalTimestamp": arrival_s,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard}:{first_sequence + i}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/tidegate-ingest",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
            }
            for i, line in enumerate(lines)
        ]
    }


def batches(lines: list[bytes], size: int) -> list[list[bytes]]:
    return [lines[i : i + size] for i in range(0, len(lines), size)]
