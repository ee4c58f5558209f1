"""Section 6: DynamoDB units per event, ingest and closing, with `mini_batch` off and on
(60 s), counted at the boto3 level while the real handlers run through the local event
source mapping on moto (the closer after every round, as the runner does).

One shard at 100 and at 1,000 events/s: a batch is one second of events (the mapping's
1-second batching window), and with mini-batch the mapping's tumbling window ends after 60
of them, so a flush covers a minute of a shard, as deployed. A shard is independent of the
others (its own buffer, its own flush), so 10,000 events/s on ten shards writes per event
what one shard at 1,000 events/s does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tidegate.spec import Pipeline, parse_pipeline
from tidegate_dev.bench import workload
from tidegate_dev.bench.local_run import drive
from tidegate_dev.bench.requests import DYNAMODB_WRITES, RequestCounter

LATENCY_S = 60
RATES = (100, 1_000)


@dataclass
class MiniBatchWrites:
    rate: int  # events per second of the shard
    mini_batch_s: int
    events: int
    aggregated: int
    writes: int
    write_units: int
    read_units: int
    requests: int
    windows_closed: int = 0
    closer_write_units: int = 0
    closer_read_units: int = 0
    closer_requests: int = 0

    @property
    def wru_per_event(self) -> float:
        return self.write_units / self.events

    @property
    def rru_per_event(self) -> float:
        return self.read_units / self.events

    def as_dict(self) -> dict[str, Any]:
        windows = max(1, self.windows_closed)
        return {**asdict(self), "wru_per_event": round(self.wru_per_event, 4),
                "rru_per_event": round(self.rru_per_event, 4),
                "requests_per_event": round(self.requests / self.events, 4),
                "closer_wru_per_window": round(self.closer_write_units / windows, 4),
                "closer_rru_per_window": round(self.closer_read_units / windows, 4),
                "total_wru_per_event": round(
                    (self.write_units + self.closer_write_units) / self.events, 4)}


def pipeline(latency_s: int) -> Pipeline:
    data = workload.pipeline_data("tumbling")
    data["name"] = f"bench-mini-batch-{latency_s}"
    # A shard holding a minute of partials must not be taken for idle meanwhile.
    data["watermark"] = {**data.get("watermark", {}), "idle_timeout": "5m"}
    if latency_s:
        data["mini_batch"] = {"allow_latency": f"{latency_s}s"}
    return parse_pipeline(data, source="bench")


def measure(counter: RequestCounter, minutes: int = 1,
            rates: tuple[int, ...] = RATES) -> list[MiniBatchWrites]:
    out: list[MiniBatchWrites] = []
    for rate in rates:
        lines = workload.Workload(events=rate * LATENCY_S * minutes,
                                  spacing_ms=1_000 / rate).lines()
        for latency_s in (0, LATENCY_S):
            counter.clear()
            run = drive(pipeline(latency_s), lines, counter, batch_size=rate, run_closer=True,
                        window_batches=LATENCY_S if latency_s else None)
            out.append(MiniBatchWrites(
                rate=rate, mini_batch_s=latency_s, events=len(lines),
                aggregated=run.summary.get("aggregated", 0),
                writes=counter.count("ingest", "dynamodb", DYNAMODB_WRITES),
                write_units=counter.write_units["ingest"],
                read_units=counter.read_units["ingest"],
                requests=counter.count("ingest", "dynamodb"),
                windows_closed=sum(r.windows_closed for r in run.closer_runs),
                closer_write_units=counter.write_units["closer"],
                closer_read_units=counter.read_units["closer"],
                closer_requests=counter.count("closer", "dynamodb"),
            ))
    return out
