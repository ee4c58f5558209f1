"""Section 2: DynamoDB writes per 1,000 events, counted at the boto3 level while the real
ingest handler runs against moto, beside the floor and a write-per-event design."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidegate.rejections import Rejected
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import Pipeline
from tidegate_dev.bench import workload
from tidegate_dev.bench.ingest_cpu import window_state
from tidegate_dev.bench.local_run import drive
from tidegate_dev.bench.requests import DYNAMODB_WRITES, RequestCounter

BATCH = 1_000


def floor_writes(pipeline: Pipeline, lines: list[bytes], batch_size: int) -> int:
    """One conditional write per distinct state item a batch touches: (key, pane) for panes,
    (key) for sessions. No design that writes each group once per batch can do better."""
    decoder = JsonDecoder(pipeline, compile_schema(pipeline))
    state = window_state(pipeline)
    total = 0
    for batch in workload.batches(lines, batch_size):
        items: set[tuple[str, str]] = set()
        for line in batch:
            try:
                event = decoder.decode_bytes(line)
            except Rejected:
                continue
            items.add(state.locate(event.key, event.time_ms))
        total += len(items)
    return total


@dataclass
class WindowWrites:
    window: str
    events: int
    writes: int
    write_units: int
    floor: int
    per_event: int  # one write per event
    per_window_event: int  # one write per (event, window it falls in)
    requests: dict[str, int]
    aggregated: int
    read_units: int = 0
    ddb_requests: int = 0
    items_put: int = 0
    bytes_put: int = 0

    def per_1000(self, value: int) -> float:
        return 1_000 * value / self.events

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "aggregated": self.aggregated,
            "writes": self.writes,
            "write_units": self.write_units,
            "read_units": self.read_units,
            "dynamodb_requests": self.ddb_requests,
            "floor": self.floor,
            "writes_per_1000": round(self.per_1000(self.writes), 1),
            "floor_per_1000": round(self.per_1000(self.floor), 1),
            "per_event_per_1000": round(self.per_1000(self.per_event), 1),
            "per_window_event_per_1000": round(self.per_1000(self.per_window_event), 1),
            "ratio_to_floor": round(self.writes / self.floor, 4) if self.floor else None,
            "ratio_to_per_event": round(self.writes / self.per_event, 4),
            "ingest_requests": self.requests,
        }


def measure(events: int, counter: RequestCounter, batch_size: int = BATCH) -> list[WindowWrites]:
    lines = workload.Workload(events=events).lines()
    out: list[WindowWrites] = []
    for window in workload.WINDOWS:
        pipeline = workload.pipeline(window)
        counter.clear()
        run = drive(pipeline, lines, counter, batch_size, run_closer=False)
        windows_per_event = 5 if window == "sliding" else 1  # 5 min / 1 min
        out.append(WindowWrites(
            window=window,
            events=len(lines),
            writes=counter.count("ingest", "dynamodb", DYNAMODB_WRITES),
            write_units=counter.write_units["ingest"],
            floor=floor_writes(pipeline, lines, batch_size),
            per_event=len(lines),
            per_window_event=len(lines) * windows_per_event,
            requests=counter.by_operation("ingest"),
            aggregated=run.summary.get("aggregated", 0),
            read_units=counter.read_units["ingest"],
            ddb_requests=counter.count("ingest", "dynamodb"),
            items_put=counter.items_put["ingest"],
            bytes_put=counter.bytes_put["ingest"],
        ))
    return out
