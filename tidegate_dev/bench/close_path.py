"""Section 4: the close path. Windows closed per second by one closer against moto, and
result latency in local mode.

Latency is processing time, in the runner's loop order (an ingest round, then a closer
run): from the end of the ingest round that raised the watermark past a window's
`end + allowed_lateness` to the return of the sink publish carrying its result. Event time
is spaced so each round of 1,000 events covers about a minute, and windows close during
the run rather than only at the final flush (flushed windows have no latency to measure).

The handlers run with the write concurrency they have in Lambda (the closer claims and
completes 8 keys' windows at a time); local runs default to 1 only so that a `--chaos`
seed replays the same faults in the same order, and the bench injects no faults.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tidegate import topology
from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY
from tidegate_dev.bench import workload
from tidegate_dev.bench.local_run import drive
from tidegate_dev.bench.requests import RequestCounter

KEYS = 100
SPACING_MS = 60.0  # 1,000 events a minute of event time: a window boundary every round
BATCH = 1_000


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None when nothing was timed (JSON has no NaN)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass
class ClosePath:
    events: int
    keys: int
    windows_closed: int
    closer_seconds: float
    windows_per_closer_run: float
    latencies_s: list[float]
    requests: dict[str, int]
    ddb_requests: int = 0
    write_units: int = 0
    read_units: int = 0
    window: str = "tumbling"
    items_put: int = 0
    bytes_put: int = 0

    @property
    def windows_per_second(self) -> float:
        return self.windows_closed / self.closer_seconds if self.closer_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "keys": self.keys,
            "windows_closed": self.windows_closed,
            "closer_seconds": round(self.closer_seconds, 3),
            "windows_per_second": round(self.windows_per_second, 1),
            "windows_per_closer_run": round(self.windows_per_closer_run, 1),
            "latency_results": len(self.latencies_s),
            "latency_p50_s": _round(percentile(self.latencies_s, 0.5)),
            "latency_p99_s": _round(percentile(self.latencies_s, 0.99)),
            "latency_mean_s": round(statistics.fmean(self.latencies_s), 3)
            if self.latencies_s else None,
            "closer_requests": self.requests,
            "closer_dynamodb_requests": self.ddb_requests,
            "closer_write_units": self.write_units,
            "closer_read_units": self.read_units,
        }


@contextmanager
def _lambda_concurrency() -> Iterator[None]:
    saved = os.environ.get(topology.ENV_WRITE_CONCURRENCY)
    os.environ[topology.ENV_WRITE_CONCURRENCY] = str(LAMBDA_WRITE_CONCURRENCY)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(topology.ENV_WRITE_CONCURRENCY, None)
        else:
            os.environ[topology.ENV_WRITE_CONCURRENCY] = saved


def measure(events: int, counter: RequestCounter, keys: int = KEYS,
            window: str = "tumbling") -> ClosePath:
    lines = workload.Workload(events=events, keys=keys, spacing_ms=SPACING_MS).lines()
    counter.clear()
    with _lambda_concurrency():
        run = drive(workload.pipeline(window), lines, counter, BATCH, run_closer=True)
    # Closer runs that closed something: a run that found nothing due measures the poll,
    # not the close path.
    busy = [r for r in run.closer_runs if r.windows_closed]
    closed = sum(r.windows_closed for r in busy)
    return ClosePath(
        events=len(lines),
        keys=keys,
        windows_closed=closed,
        closer_seconds=sum(r.seconds for r in busy),
        windows_per_closer_run=closed / len(busy) if busy else 0.0,
        latencies_s=run.latencies_s,
        requests=counter.by_operation("closer"),
        ddb_requests=counter.count("closer", "dynamodb"),
        write_units=counter.write_units["closer"],
        read_units=counter.read_units["closer"],
        window=window,
        items_put=counter.items_put["closer"],
        bytes_put=counter.bytes_put["closer"],
    )
