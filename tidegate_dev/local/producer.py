"""Putting a run's events on the source stream, as a producer keyed by aggregation key would."""

from __future__ import annotations

import hashlib
import json

from tidegate.aws import client
from tidegate.spec import Pipeline

_PUT_BATCH = 500


def partition_key(pipeline: Pipeline, line: bytes) -> str:
    """The aggregation key, as the producer would set it; a hash for unparseable lines."""
    try:
        obj = json.loads(line)
        if isinstance(obj, dict) and all(k in obj for k in pipeline.key):
            text = json.dumps([obj[k] for k in pipeline.key], separators=(",", ":"))
            if len(text) <= 256:
                return text
            return hashlib.sha256(text.encode()).hexdigest()
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return hashlib.sha256(line).hexdigest()


def put_events(stream: str, pipeline: Pipeline, lines: list[bytes]) -> None:
    kinesis = client("kinesis")
    for i in range(0, len(lines), _PUT_BATCH):
        pending = [
            {"Data": line, "PartitionKey": partition_key(pipeline, line)}
            for line in lines[i : i + _PUT_BATCH]
        ]
        while pending:
            out = kinesis.put_records(StreamName=stream, Records=pending)
            # Retry only the throttled entries, in order (order per key is kept: a failed
            # entry and every later entry of its shard fail together in practice).
            results = zip(pending, out["Records"], strict=True)
            pending = [rec for rec, res in results if res.get("ErrorCode")]
