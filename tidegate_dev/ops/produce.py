"""`tidegate produce`: a load generator for a pipeline's Kinesis source.

Events are generated from the pipeline's inline schema so that they pass validation, with
knobs for what makes stream processing hard: skewed keys (Zipf), out-of-order arrival, late
events and malformed records. The same seed gives the same events.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from tidegate.aws import client
from tidegate.spec import (
    EnumField,
    InlineSchema,
    Pipeline,
    RegistrySchema,
    SessionWindow,
    load_pipeline_file,
)
from tidegate_dev.local.producer import partition_key

PUT_BATCH = 500  # PutRecords' limit per call
_MAX_ATTEMPTS = 30
_THROTTLED = "ProvisionedThroughputExceededException"


@dataclass
class GeneratorOptions:
    keys: int = 10
    zipf: float = 0.0  # 0: every key equally likely
    out_of_order_ms: int = 0
    late_fraction: float = 0.0
    malformed_fraction: float = 0.0
    seed: int | None = None
    start_ms: int | None = None  # event time of the first event (default: now)
    interval_ms: float = 10.0  # event-time step between consecutive events


@dataclass
class SendStats:
    sent: int = 0
    throttled: int = 0  # entries PutRecords refused for throughput (then retried)
    failed_other: int = 0  # entries refused for another reason (also retried)
    calls: int = 0
    partitions: dict[str, int] = field(default_factory=dict)


class EventGenerator:
    """Schema-valid events (and, on request, late and malformed ones) for one pipeline."""

    def __init__(self, pipeline: Pipeline, options: GeneratorOptions) -> None:
        schema = pipeline.schema_
        if isinstance(schema, RegistrySchema):
            schema = schema.current  # events of the pipeline's version, unmarked
        if not isinstance(schema, InlineSchema):
            raise SystemExit(
                "error: produce generates events from an inline schema; this pipeline "
                "references a model: use --from-file"
            )
        self.pipeline = pipeline
        self.schema = schema
        self.options = options
        self.rng = random.Random(options.seed)
        n = max(1, options.keys)
        weights = [1.0 / (i + 1) ** options.zipf for i in range(n)]
        self._cum_weights = list(accumulate(weights))
        self._start = options.start_ms if options.start_ms is not None else int(
            time.time() * 1000)
        # Late means behind every window that could still take it: past the watermark
        # delay, the allowed lateness, a whole window and the out-of-order spread.
        window = pipeline.window
        span = window.gap if isinstance(window, SessionWindow) else window.size
        self._late_by = (pipeline.watermark.delay + pipeline.allowed_lateness
                         + 2 * span + options.out_of_order_ms)
        self.count = 0

    def key_index(self) -> int:
        return self.rng.choices(range(len(self._cum_weights)), cum_weights=self._cum_weights)[0]

    def event_time(self, i: int) -> int:
        t = self._start + int(i * self.options.interval_ms)
        if self.options.out_of_order_ms:
            t -= self.rng.randint(0, self.options.out_of_order_ms)
        return t

    def event(self, i: int) -> dict[str, Any]:
        key = self.key_index()
        t = self.event_time(i)
        if self.options.late_fraction and self.rng.random() < self.options.late_fraction:
            t = max(0, t - self._late_by - self.rng.randint(0, self._late_by))
        out: dict[str, Any] = {}
        for name, kind in self.schema.fields.items():
            if self.schema.is_optional(name) and self.rng.random() < 0.1:
                continue
            if name == self.pipeline.event_time:
                out[name] = t
            elif name in self.pipeline.key:
                out[name] = self._key_value(name, kind, key)
            else:
                out[name] = self._value(kind, t)
        return out

    def _key_value(self, name: str, kind: str | EnumField, index: int) -> Any:
        if isinstance(kind, EnumField):
            return kind.enum[index % len(kind.enum)]
        base = kind.rstrip("?")
        if base in ("integer", "timestamp"):
            return index
        if base == "number":
            return float(index)
        if base == "boolean":
            return index % 2 == 1
        return f"{name[:1]}{index}"

    def _value(self, kind: str | EnumField, t: int) -> Any:
        if isinstance(kind, EnumField):
            return self.rng.choice(kind.enum)
        base = kind.rstrip("?")
        if base == "integer":
            return self.rng.randint(0, 1000)
        if base == "number":
            return round(self.rng.uniform(0, 100), 2)
        if base == "boolean":
            return self.rng.random() < 0.5
        if base == "timestamp":
            return t
        return self.rng.choice(("alpha", "bravo", "charlie", "delta", "echo"))

    def malformed(self, i: int) -> bytes:
        """A record the pipeline must dead-letter without failing its neighbours."""
        kind = self.rng.randrange(3)
        if kind == 0:
            return b'{"truncated": '
        event = self.event(i)
        if kind == 1:
            event.pop(self.pipeline.event_time, None)  # required field missing
        else:
            event[self.pipeline.event_time] = "not a time"
        return json.dumps(event, separators=(",", ":")).encode("utf-8")

    def line(self) -> bytes:
        i = self.count
        self.count += 1
        if self.options.malformed_fraction and self.rng.random() < self.options.malformed_fraction:
            return self.malformed(i)
        return json.dumps(self.event(i), separators=(",", ":")).encode("utf-8")


def put_batch(stream: str, pipeline: Pipeline, lines: list[bytes], stats: SendStats,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """PutRecords (≤ 500 a call), retrying only the entries that failed, with backoff."""
    kinesis = client("kinesis")
    for i in range(0, len(lines), PUT_BATCH):
        pending = [{"Data": line, "PartitionKey": partition_key(pipeline, line)}
                   for line in lines[i:i + PUT_BATCH]]
        for attempt in range(_MAX_ATTEMPTS):
            out = kinesis.put_records(StreamName=stream, Records=pending)
            stats.calls += 1
            retry = []
            for record, result in zip(pending, out["Records"], strict=True):
                code = result.get("ErrorCode")
                if code is None:
                    stats.sent += 1
                    shard = result.get("ShardId", "?")
                    stats.partitions[shard] = stats.partitions.get(shard, 0) + 1
                    continue
                if code == _THROTTLED:
                    stats.throttled += 1
                else:
                    stats.failed_other += 1
                retry.append(record)
            if not retry:
                break
            pending = retry
            # Full jitter: producers that were throttled together must not retry together.
            sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
        else:
            raise RuntimeError(f"{len(pending)} records still refused after {_MAX_ATTEMPTS} tries")


def paced(lines: Iterator[bytes], total: int | None, rate: float | None,
          deadline: float | None, chunk: int = PUT_BATCH) -> Iterator[list[bytes]]:
    """Group lines into PutRecords batches, released no faster than `rate` per second."""
    started = time.monotonic()
    done = 0
    batch: list[bytes] = []
    for line in lines:
        if deadline is not None and time.monotonic() >= deadline:
            break
        batch.append(line)
        # At a rate, send small batches often (~5 a second) rather than bursts of 500.
        limit = chunk if rate is None else max(1, min(chunk, int(rate / 5) or 1))
        if len(batch) >= limit:
            if rate:
                wait = started + (done + len(batch)) / rate - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            done += len(batch)
            yield batch
            batch = []
        if total is not None and done + len(batch) >= total:
            break
    if batch:
        yield batch


def produce(args: argparse.Namespace) -> int:
    from tidegate_dev.cli.console import err
    from tidegate_dev.local.runner import read_event_lines
    from tidegate_dev.ops.common import aws_endpoint, resolve

    pipeline = load_pipeline_file(args.pipeline)
    kafka = pipeline.source.type == "msk"
    if kafka and not args.kafka_bootstrap:
        raise SystemExit("error: this pipeline reads a Kafka topic: give --kafka-bootstrap "
                         "HOST:PORT (the MSK cluster's bootstrap brokers)")
    if pipeline.format != "json":
        raise SystemExit("error: produce sends JSON; this pipeline reads avro")
    deadline = time.monotonic() + args.duration if args.duration else None
    total: int | None
    if args.from_file:
        file_lines = read_event_lines(args.from_file)
        source: Iterator[bytes] = iter(file_lines)
        total = len(file_lines) if args.count is None else min(args.count, len(file_lines))
    else:
        options = GeneratorOptions(
            keys=args.keys, zipf=args.zipf, out_of_order_ms=args.out_of_order,
            late_fraction=args.late_fraction, malformed_fraction=args.malformed_fraction,
            seed=args.seed, start_ms=args.start_ms,
            interval_ms=1000.0 / args.rate if args.rate else args.interval_ms,
        )
        generator = EventGenerator(pipeline, options)
        source = iter(generator.line, None)  # endless: count or duration stops it
        total = args.count if args.count is not None else (
            None if args.duration else 1000)
    stats = SendStats()
    batches = paced(source, total, args.rate, deadline)
    if kafka:
        stream = args.stream or pipeline.source.topic_name  # type: ignore[union-attr]
        send = _kafka_sender(args.kafka_bootstrap, stream)
        _send(stream, pipeline, batches, stats, total, quiet=args.quiet, send=send)
    else:
        with aws_endpoint(args.endpoint_url, args.region):
            stream = resolve(pipeline, stack=args.stack, stream=args.stream,
                             resolve_queues=False).source_stream
            _send(stream, pipeline, batches, stats, total, quiet=args.quiet)
    summary = {"stream": stream, "sent": stats.sent, "throttled": stats.throttled,
               "failed_other": stats.failed_other, "put_records_calls": stats.calls}
    err.print(f"sent {stats.sent} records to {stream} ({stats.throttled} throttled, retried)")
    print(json.dumps(summary))
    return 0


Sender = Callable[[str, Pipeline, list[bytes], SendStats], None]


def _kafka_sender(bootstrap: str, topic: str) -> Sender:
    """Keyed by the aggregation key, in order, as the local Kafka feed produces."""
    from tidegate_dev.local.kafka import produce as produce_to_topic
    from tidegate_dev.local.producer import partition_key

    def send(_topic: str, pipeline: Pipeline, lines: list[bytes], stats: SendStats) -> None:
        produce_to_topic(bootstrap, topic, [partition_key(pipeline, line) for line in lines],
                         lines)
        stats.calls += 1
        stats.sent += len(lines)

    return send


def _send(stream: str, pipeline: Pipeline, batches: Iterator[list[bytes]], stats: SendStats,
          total: int | None, quiet: bool = False, send: Sender | None = None) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tidegate_dev.cli.console import err

    put = send or put_batch
    if quiet:
        for batch in batches:
            put(stream, pipeline, batch, stats)
        return
    columns = (TextColumn("producing"), BarColumn(),
               TextColumn("sent {task.fields[sent]}  throttled {task.fields[throttled]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("produce", total=total, sent=0, throttled=0)
        for batch in batches:
            put(stream, pipeline, batch, stats)
            bar.update(task, completed=stats.sent, sent=stats.sent, throttled=stats.throttled)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tidegate_dev.ops.common import add_location_args

    add_location_args(parser, with_queues=False)
    amount = parser.add_argument_group("how much")
    amount.add_argument("--count", type=int, help="events to send (default 1000)")
    amount.add_argument("--duration", type=float, metavar="S", help="send for S seconds")
    amount.add_argument("--rate", type=float, metavar="EPS",
                        help="events per second (default: as fast as PutRecords takes them)")
    shape = parser.add_argument_group("what")
    shape.add_argument("--from-file", metavar="EVENTS.jsonl",
                       help="send these lines (in order) instead of generated events")
    shape.add_argument("--keys", type=int, default=10, help="distinct aggregation keys")
    shape.add_argument("--zipf", type=float, default=0.0, metavar="S",
                       help="key skew: key i has weight 1/(i+1)^S (0: uniform)")
    shape.add_argument("--out-of-order", type=int, default=0, metavar="MS",
                       help="move each event's time back by up to MS milliseconds")
    shape.add_argument("--late-fraction", type=float, default=0.0,
                       help="fraction of events stamped behind windows already closed")
    shape.add_argument("--malformed-fraction", type=float, default=0.0,
                       help="fraction of records that are not valid events")
    shape.add_argument("--seed", type=int, help="random seed (same seed, same events)")
    shape.add_argument("--start-ms", type=int,
                       help="event time of the first event, epoch ms (default: now)")
    shape.add_argument("--interval-ms", type=float, default=10.0,
                       help="event-time step between events without --rate (default 10)")
    parser.add_argument(
        "--kafka-bootstrap", metavar="HOST:PORT",
        help="msk pipelines: the brokers to produce to (--stream overrides the topic)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
