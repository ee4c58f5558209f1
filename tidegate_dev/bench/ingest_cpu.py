"""Section 1: ingest CPU, events/s per core, in-process and without any network.

The measured path is the handler's own: `sources.records_of` on a Lambda Kinesis event, then
`Ingestor.process` (decode -> validate -> future-skew check -> `locate` grouping -> `judge`,
which pre-aggregates each group against an empty item). The state is the in-memory store
(tidegate.state.memory), new for every batch so that each group writes a new item, and the
queues take every message: what is timed is CPU, never a round trip. A second figure adds
the DynamoDB attribute serialisation the real store does for each write (boto3's
TypeSerializer through `DynamoStore`, its client answering as an empty table).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tidegate import sources
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.gc_pause import collector_paused
from tidegate.ingest import Ingestor
from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import Pipeline
from tidegate.state.dynamodb import DynamoStore
from tidegate.state.memory import MemoryStore
from tidegate.watermark import WatermarkStore
from tidegate.windows import window_kind
from tidegate.windows.panes import PaneState
from tidegate.windows.session import SessionState
from tidegate_dev.bench import workload

BATCH_SIZES = (100, 1_000, 10_000)


class _EmptyTableClient:
    """Answers as DynamoDB does for a table with nothing in it, so that `DynamoStore`
    serialises every write for real without a network round trip."""

    def batch_get_item(self, **_: Any) -> dict[str, Any]:
        return {"Responses": {}}

    def put_item(self, **_: Any) -> dict[str, Any]:
        return {}


class NullQueue:
    def send(self, messages: list[dict[str, Any]]) -> list[int]:
        return []


def window_state(pipeline: Pipeline) -> PaneState | SessionState:
    return window_kind(pipeline).state(AccumulatorSet(build_aggregates(pipeline)))


def ingestor(pipeline: Pipeline, serialize: bool = False) -> Ingestor:
    memory = MemoryStore()
    return Ingestor(
        pipeline=pipeline,
        decoder=JsonDecoder(pipeline, compile_schema(pipeline)),
        windows=window_state(pipeline),
        store=DynamoStore("bench", dynamodb=_EmptyTableClient()) if serialize else memory,
        watermarks=WatermarkStore(memory, pipeline.name, pipeline.state_version),
        dead_letters=NullQueue(),  # type: ignore[arg-type]
        late_output=NullQueue(),  # type: ignore[arg-type]
        expected_partitions=list,
        now_ms=lambda: workload.BASE_MS + 86_400_000,
    )


def forget_state(ingest: Ingestor) -> None:
    """Empty the in-memory state after a batch: each group of the next one writes a new
    item (the first batch of each pane), judged against no watermark."""
    memory = ingest.watermarks.store
    assert isinstance(memory, MemoryStore)
    memory.items.clear()


def _best_rate(
    events: int, run: Callable[[], None], repeats: int,
    clock: Callable[[], float] = time.thread_time,
) -> float:
    """Events per CPU-second of this thread (or, with `clock=time.process_time`, of every
    thread of the process), best of `repeats` (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        run()
        best = min(best, clock() - start)
    return events / best if best > 0 else float("inf")


def handler_path_rate(
    pipeline: Pipeline, lines: list[bytes], batch_size: int, repeats: int,
    serialize: bool = False, write_concurrency: int = 1,
) -> float:
    """`write_concurrency` > 1: the groups' writes go out that many at a time from worker
    threads, as in Lambda (tidegate.in_flight); their CPU is counted too."""
    ingest = ingestor(pipeline, serialize)
    ingest.write_concurrency = write_concurrency
    events = [workload.kinesis_event(b, i * batch_size)
              for i, b in enumerate(workload.batches(lines, batch_size))]

    def run() -> None:
        for event in events:
            # The batch's items leave the process before the collector is back on, as with
            # DynamoDB: kept to the end of the batch, they would set off young and full
            # collector passes that a handler writing to DynamoDB never makes.
            with collector_paused():
                outcome = ingest.process(sources.records_of(event))
                forget_state(ingest)
            if outcome.aggregated != outcome.records:
                raise RuntimeError(f"bench events were not all aggregated: {outcome}")

    clock = time.thread_time if write_concurrency <= 1 else time.process_time
    return _best_rate(len(lines), run, repeats, clock)


def naive_rate(pipeline: Pipeline, lines: list[bytes], repeats: int) -> float:
    """The per-event baseline: json.loads + model_validate + one dict update per event
    (what a write-per-event design computes before its write)."""
    model = compile_schema(pipeline)
    size = 60_000
    data = [base64.b64encode(line).decode("ascii") for line in lines]

    def run() -> None:
        state: dict[tuple[str, int], list[Any]] = {}
        for item in data:
            obj = model.model_validate(json.loads(base64.b64decode(item)))
            t = obj.timestamp
            slot = (obj.userId, t - t % size)
            acc = state.get(slot)
            if acc is None:
                state[slot] = [1, obj.value, obj.value]
            else:
                acc[0] += 1
                acc[1] += obj.value
                acc[2] = max(acc[2], obj.value)

    return _best_rate(len(lines), run, repeats)


def bare_rate(pipeline: Pipeline, lines: list[bytes], repeats: int) -> float:
    """FIELD-NOTES' reference loop: base64 -> model_validate_json -> dict update."""
    model = compile_schema(pipeline)
    data = [base64.b64encode(line).decode("ascii") for line in lines]

    def run() -> None:
        counts: dict[str, int] = {}
        for item in data:
            obj = model.model_validate_json(base64.b64decode(item))
            counts[obj.userId] = counts.get(obj.userId, 0) + 1

    return _best_rate(len(lines), run, repeats)


@dataclass
class IngestCpu:
    events: int
    repeats: int
    # window -> batch size -> events/s per core
    handler: dict[str, dict[int, float]]
    serialized: dict[str, float]  # window -> events/s at batch 1,000 incl. serialisation
    naive: float
    bare: float
    # tumbling, batch 1,000, with the group writes in flight as Lambda runs them (8)
    in_flight: float = 0.0
    in_flight_serialized: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "repeats": self.repeats,
            "handler_path": {w: {str(b): round(r) for b, r in by.items()}
                             for w, by in self.handler.items()},
            "handler_path_with_serialization_batch_1000": {
                w: round(r) for w, r in self.serialized.items()
            },
            "handler_path_writes_in_flight_batch_1000": {
                "write_concurrency": LAMBDA_WRITE_CONCURRENCY,
                "tumbling": round(self.in_flight),
                "with_serialization_tumbling": round(self.in_flight_serialized),
            },
            "naive_per_event": round(self.naive),
            "bare_model_validate_json_loop": round(self.bare),
        }


def measure(events: int, repeats: int) -> IngestCpu:
    lines = workload.Workload(events=events).lines()
    handler: dict[str, dict[int, float]] = {}
    serialized: dict[str, float] = {}
    for window in workload.WINDOWS:
        pipeline = workload.pipeline(window)
        handler[window] = {b: handler_path_rate(pipeline, lines, b, repeats) for b in BATCH_SIZES}
        serialized[window] = handler_path_rate(pipeline, lines, 1_000, repeats, serialize=True)
    tumbling = workload.pipeline("tumbling")
    return IngestCpu(
        events=events,
        repeats=repeats,
        handler=handler,
        serialized=serialized,
        naive=naive_rate(tumbling, lines, repeats),
        bare=bare_rate(tumbling, lines, repeats),
        in_flight=handler_path_rate(tumbling, lines, 1_000, repeats,
                                    write_concurrency=LAMBDA_WRITE_CONCURRENCY),
        in_flight_serialized=handler_path_rate(tumbling, lines, 1_000, repeats, serialize=True,
                                               write_concurrency=LAMBDA_WRITE_CONCURRENCY),
    )
