"""`tidegate bench close-sim`: the closer fan-out on many open windows, against moto.

For each worker count: a fresh deployment of the tumbling bench pipeline, N open windows
written straight into its table (BatchWriteItem: one pane a key, built by the ingest's own
PaneState so the items are what ingest writes), the pipeline watermark stored past them,
then ONE run of the real closer handler with that many worker threads. Windows/s is
windows closed over the handler's wall time. Then the sink is read back: every window must
be published (no miss), and every copy of a result must be the same bytes under one
idempotency key (no double emission of different content), with the content written.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate import topology
from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.aggregates.registry import build_aggregates
from tidegate.schemas.decode import JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.sources.records import RecordBatch, SourceRecord
from tidegate.spec import Pipeline, parse_pipeline
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.state.protocol import Group
from tidegate.watermark import MIN_WATERMARK, WatermarkStore
from tidegate.windows import window_kind
from tidegate.windows.panes import PaneState
from tidegate_dev.bench import workload
from tidegate_dev.local import readback
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.resources import LocalDeployment, deploy
from tidegate_dev.local.runner import handler_environment

WINDOW_MS = 60_000
_WRITE_BATCH = 25  # BatchWriteItem's limit


@dataclass
class SimRun:
    workers: int
    windows: int
    seconds: float
    windows_closed: int
    published: int  # records read back from the sink
    distinct_keys: int  # distinct idempotency keys among them
    missing: int  # windows written but never published
    conflicting: int  # idempotency keys published with different content
    wrong_content: int  # results whose aggregates differ from what was written
    left_open: int  # panes still in the open-window index afterwards

    @property
    def windows_per_second(self) -> float:
        return self.windows_closed / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return (self.windows_closed == self.windows == self.distinct_keys
                and not (self.missing or self.conflicting or self.wrong_content
                         or self.left_open))

    def as_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers, "windows": self.windows,
            "seconds": round(self.seconds, 2),
            "windows_per_second": round(self.windows_per_second, 1),
            "windows_closed": self.windows_closed, "published": self.published,
            "distinct_idempotency_keys": self.distinct_keys, "missing": self.missing,
            "conflicting": self.conflicting, "wrong_content": self.wrong_content,
            "left_open": self.left_open, "ok": self.ok,
        }


@dataclass
class OpenWindows:
    """What was written: the pane items, and each key's expected aggregates."""

    items: list[dict[str, Any]]
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> aggregates
    close_at: int = 0


def sim_pipeline(index_shards: int) -> Pipeline:
    data = workload.pipeline_data("tumbling")
    data["name"] = "bench-closesim"
    data["index_shards"] = index_shards
    return parse_pipeline(data, source="close-sim")


def open_windows(pipeline: Pipeline, windows: int) -> OpenWindows:
    """One 1-minute window for each of `windows` keys, 1 to 3 events each."""
    decoder = JsonDecoder(pipeline, compile_schema(pipeline))
    accumulators = AccumulatorSet(build_aggregates(pipeline))
    state = window_kind(pipeline).state(accumulators)
    assert isinstance(state, PaneState)
    start = workload.BASE_MS
    out = OpenWindows(items=[], close_at=start + WINDOW_MS)
    for i in range(windows):
        user = f"u{i}"
        records = []
        for j in range(1 + i % 3):
            line = json.dumps({"userId": user, "timestamp": start + 1_000 * j,
                               "action": "purchase" if j else "click", "value": j + 1})
            records.append(SourceRecord("shardId-000000000000", str(i * 3 + j),
                                        base64.b64encode(line.encode("utf-8")).decode(), start))
        batch = decoder.decode_batch(RecordBatch(records))
        event_key = batch.keys[0]
        assert event_key is not None
        pk, sk = state.locate(event_key, start)
        group = Group(pk, sk, event_key, list(range(len(records))), batch)
        verdict = state.judge(group, None, MIN_WATERMARK)
        assert verdict.item is not None
        out.items.append(verdict.item)
        n = len(records)
        out.expected[user] = {"count": n, "total_value": n * (n + 1) // 2, "max_value": n}
    return out


def write_open(store: DynamoStore, items: list[dict[str, Any]]) -> None:
    db = store.db
    for i in range(0, len(items), _WRITE_BATCH):
        request = {store.table: [
            {"PutRequest": {"Item": store._to_item(item)}} for item in items[i : i + _WRITE_BATCH]
        ]}
        while request:
            request = db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def _left_open(store: DynamoStore, pipeline: Pipeline) -> int:
    partitions = keys.open_index_partitions(
        pipeline.name, pipeline.state_version, pipeline.index_shards
    )
    return sum(store.count_open(p, 2**62, 10**9) for p in partitions)


def run_once(pipeline: Pipeline, opened: OpenWindows, workers: int) -> SimRun:
    deployment: LocalDeployment = deploy(pipeline, 1, f"-{uuid.uuid4().hex[:6]}")
    store = DynamoStore(deployment.table)
    write_open(store, opened.items)
    # The stored pipeline watermark past every window: what the coordinator reads first.
    WatermarkStore(store, pipeline.name, pipeline.state_version).advance_pipeline(
        opened.close_at
    )
    with handler_environment(deployment) as (_, closer, _):
        os.environ[topology.ENV_CLOSER_WORKERS] = str(workers)
        os.environ[topology.ENV_FANOUT_THRESHOLD] = "0"
        closer.current_closer()  # cold start outside the timing, as the bench's other sections do
        started = time.perf_counter()
        outcome = closer.handler({}, LambdaContext("tidegate-closer", timeout_s=3_600))
        seconds = time.perf_counter() - started
    results = readback.results(deployment)
    by_key: dict[str, dict[str, Any]] = {}
    conflicting: set[str] = set()
    for result in results:
        first = by_key.setdefault(result["idempotency_key"], result)
        if first != result:
            conflicting.add(result["idempotency_key"])
    published_users = {r["key"]["userId"]: r for r in by_key.values()}
    wrong = sum(
        1 for user, r in published_users.items() if r["aggregates"] != opened.expected.get(user)
    )
    return SimRun(
        workers=workers,
        windows=len(opened.items),
        seconds=seconds,
        windows_closed=int(outcome["windows_closed"]),
        published=len(results),
        distinct_keys=len(by_key),
        missing=len(set(opened.expected) - set(published_users)),
        conflicting=len(conflicting),
        wrong_content=wrong,
        left_open=_left_open(store, pipeline),
    )


def simulate(
    windows: int, workers: list[int], index_shards: int,
    on_run: Callable[[SimRun], None] | None = None,
) -> list[SimRun]:
    """`on_run`: told each run as it ends (a 100,000-window run takes minutes per count).
    moto runs in a process of its own, so the closer's threads do not share its GIL."""
    from tidegate_dev.local.server import endpoint

    pipeline = sim_pipeline(index_shards)
    opened = open_windows(pipeline, windows)
    runs: list[SimRun] = []
    with endpoint(own_process=True):
        for n in workers:
            runs.append(run_once(pipeline, opened, n))
            if on_run is not None:
                on_run(runs[-1])
    return runs


def _counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"close-sim: --workers must be counts like 1,2,4,8, not {text!r}"
        raise SystemExit(message) from None
    if not counts or min(counts) < 1:
        raise SystemExit(f"close-sim: --workers must be counts of at least 1, not {text!r}")
    return counts


def cli(args: Any) -> int:
    """`tidegate bench close-sim`: prints one row per worker count; non-zero on any miss or
    double emission of different content."""
    from rich.table import Table

    from tidegate_dev.cli.console import err, out

    workers = _counts(args.workers)
    if args.windows < 1:
        raise SystemExit("close-sim: --windows must be at least 1")
    shards = args.shards or max(workers)
    err.print(f"[bold]close-sim[/]: {args.windows:,} windows, {shards} index shards, "
              f"workers {', '.join(map(str, workers))}")
    runs = simulate(args.windows, workers, shards, on_run=lambda r: err.print(
        f"  {r.workers} workers: {r.windows_per_second:,.1f} windows/s, "
        f"{r.missing} missed, {r.conflicting + r.wrong_content} conflicting, "
        f"{r.left_open} left open: {json.dumps(r.as_dict())}"))
    if args.json:
        out.print_json(json.dumps({"windows": args.windows, "index_shards": shards,
                                   "runs": [r.as_dict() for r in runs]}))
    else:
        table = Table(title=f"closer fan-out: {args.windows:,} windows, {shards} index "
                            "shards, moto in its own process")
        for col in ("workers", "seconds", "windows/s", "published", "distinct keys",
                    "missed", "conflicting", "left open", "ok"):
            table.add_column(col, justify="right")
        for r in runs:
            table.add_row(str(r.workers), f"{r.seconds:,.1f}", f"{r.windows_per_second:,.1f}",
                          f"{r.published:,}", f"{r.distinct_keys:,}", str(r.missing),
                          str(r.conflicting + r.wrong_content), str(r.left_open),
                          "yes" if r.ok else "NO")
        out.print(table)
    return 0 if all(r.ok for r in runs) else 1
