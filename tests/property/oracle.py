"""Reference oracle: DESIGN.md's window semantics in one process, no AWS, for tests only.

It is meant to be read and believed, not to be fast: plain loops over plain lists, every
event kept, every window recomputed from its events. It models only what the real system
is allowed to do differently from per-event semantics (CONTRACT.md's two exceptions):

* the watermark is the minimum over Kinesis shards, and a shard that has had no valid
  event yet holds it at -infinity;
* the records of one batch are judged against the pipeline watermark as the batch began,

and the local runner's delivery order (rounds of one batch per shard, in ShardId order).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from tidegate.spec import (
    EnumField,
    InlineSchema,
    Pipeline,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
)

NEG_INF = -math.inf
MAX_EVENT_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_INT64 = 2**63


# -- where a line goes -----------------------------------------------------------------------
def partition_key(pipeline: Pipeline, line: bytes) -> str:
    """The producer's partition key (the local runner's rule, restated)."""
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


def shard_index(key: str, shards: int) -> int:
    """Kinesis: MD5 of the key as a 128-bit number, in evenly split hash ranges (as moto)."""
    h = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest(), "big")
    step = 2**128 // shards
    for i in range(shards):
        start = i * step
        # The last shard takes the remainder of the division up to 2**128.
        end = (i + 1) * step if i < shards - 1 else 2**128
        if start <= h < end:
            return i
    raise AssertionError("unreachable: the ranges cover [0, 2**128)")


# -- what a line means -----------------------------------------------------------------------
@dataclass
class Event:
    time_ms: int
    key: tuple[Any, ...]
    values: dict[str, Any]


def event_time_ms(value: Any) -> int | None:
    """Epoch ms from an int, a whole float or an ISO-8601 string with offset; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, int):
        ms = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            return None
        delta = parsed.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
        ms = (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000
    else:
        return None
    if ms < 0 or ms > MAX_EVENT_TIME_MS:
        return None
    return ms


def _value_ok(kind: str | EnumField, value: Any) -> bool:
    if isinstance(kind, EnumField):
        return value in kind.enum and not isinstance(value, bool)
    base = kind.rstrip("?")
    if base == "string":
        return isinstance(value, str)
    if base == "boolean":
        return isinstance(value, bool)
    if base == "integer":
        return isinstance(value, int) and not isinstance(value, bool) and -_INT64 <= value < _INT64
    if base == "number":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return -_INT64 <= value < _INT64
        if isinstance(value, float):
            size = abs(value)
            return math.isfinite(value) and (size == 0 or 1e-100 <= size <= 1e100)
        return False
    if base == "timestamp":
        return event_time_ms(value) is not None
    raise AssertionError(f"unknown field type {kind!r}")


def _optional(kind: str | EnumField) -> bool:
    return kind.optional if isinstance(kind, EnumField) else kind.endswith("?")


def decode(pipeline: Pipeline, line: bytes) -> Event | None:
    """A valid event, or None for a line the pipeline must dead-letter."""
    schema = pipeline.schema_
    assert isinstance(schema, InlineSchema), "the oracle knows inline schemas only"
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    for name, kind in schema.fields.items():
        value = obj.get(name)
        if value is None:
            if _optional(kind):
                continue
            return None
        if not _value_ok(kind, value):
            return None
    time_ms = event_time_ms(obj[pipeline.event_time])
    assert time_ms is not None
    key = tuple(obj[k] for k in pipeline.key)
    fields = {spec.field for spec in pipeline.aggregates.values() if spec.field}
    return Event(time_ms, key, {f: obj.get(f) for f in fields})


# -- aggregates ------------------------------------------------------------------------------
def aggregate(pipeline: Pipeline, events: list[Event]) -> dict[str, Any]:
    """count, sum, min, max, avg over the events; absent (None) values are skipped."""
    out: dict[str, Any] = {}
    for name, spec in pipeline.aggregates.items():
        if spec.op == "count" and spec.field is None:
            out[name] = len(events)
            continue
        values = [e.values[spec.field] for e in events if e.values.get(spec.field) is not None]
        # A field declared `number` gives floats in every window; otherwise a float value
        # anywhere makes the result one.
        number = getattr(pipeline.schema_, "field_type", lambda _: None)(spec.field) == "number"
        any_float = number or any(isinstance(v, float) for v in values)
        # Exact sums of the values' binary values; a float sum is then math.fsum's.
        total = sum((Fraction(v) for v in values), Fraction(0))
        if spec.op == "count":
            out[name] = len(values)
        elif spec.op == "sum":
            out[name] = float(total) if any_float else int(total)
        elif spec.op == "avg":
            out[name] = float(total / len(values)) if values else None
        elif not values:
            out[name] = None
        else:
            best = max(values) if spec.op == "max" else min(values)
            ties = [v for v in values if v == best]
            # Equal int and float values: the integer rendering wins.
            if number or all(isinstance(v, float) for v in ties):
                out[name] = float(best)
            else:
                out[name] = int(best)
    return out


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Session:
    first_ms: int
    last_ms: int
    events: list[Event]
    only_this_batch: bool


@dataclass
class OracleRun:
    results: list[dict[str, Any]] = field(default_factory=list)
    aggregated: int = 0
    late: int = 0
    dead_lettered: int = 0


def _aligned_windows(t: int, size: int, slide: int) -> list[int]:
    """Starts of every [k*slide, k*slide + size) that contains t."""
    starts = []
    ws = t - t % slide  # the latest window start at or before t (Python % floors)
    while ws + size > t:
        starts.append(ws)
        ws -= slide
    return starts


def _overlap(a: Session, b: Session, gap: int) -> bool:
    # [a.first, a.last + gap] and [b.first, b.last + gap] intersect: touching merges (Flink).
    return a.first_ms <= b.last_ms + gap and b.first_ms <= a.last_ms + gap


def _merge_all(sessions: list[Session], gap: int) -> list[Session]:
    """Merge overlapping or touching sessions until none do (transitively)."""
    merged = list(sessions)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                if _overlap(a, b, gap):
                    merged[i] = Session(
                        min(a.first_ms, b.first_ms),
                        max(a.last_ms, b.last_ms),
                        a.events + b.events,
                        a.only_this_batch and b.only_this_batch,
                    )
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged


def run_oracle(
    pipeline: Pipeline, lines: list[bytes], shards: int = 1, batch_size: int = 100
) -> OracleRun:
    run = OracleRun()
    lateness = pipeline.allowed_lateness
    delay = pipeline.watermark.delay
    window = pipeline.window

    queues: list[list[bytes]] = [[] for _ in range(shards)]
    for line in lines:
        queues[shard_index(partition_key(pipeline, line), shards)].append(line)

    shard_max: list[float] = [NEG_INF] * shards  # max valid event time seen per shard
    watermark: float = NEG_INF
    # Tumbling/sliding: (key, window start) -> contributing events.
    windows: dict[tuple[tuple[Any, ...], int], list[Event]] = {}
    # Sessions: key -> its sessions (frozen ones included; they are simply never merged).
    sessions: dict[tuple[Any, ...], list[Session]] = {}

    def process_batch(batch: list[bytes], shard: int) -> None:
        nonlocal watermark
        wm = watermark  # every record of the batch is judged against this
        valid: list[Event] = []
        for line in batch:
            event = decode(pipeline, line)
            if event is None:
                run.dead_lettered += 1
            else:
                valid.append(event)

        if isinstance(window, TumblingWindow | SlidingWindow):
            size = window.size
            slide = window.slide if isinstance(window, SlidingWindow) else window.size
            for event in valid:
                open_starts = [
                    ws
                    for ws in _aligned_windows(event.time_ms, size, slide)
                    if ws + size + lateness > wm
                ]
                if not open_starts:
                    run.late += 1
                    continue
                run.aggregated += 1
                for ws in open_starts:
                    windows.setdefault((event.key, ws), []).append(event)
        else:
            assert isinstance(window, SessionWindow)
            gap = window.gap
            by_key: dict[tuple[Any, ...], list[Event]] = {}
            for event in valid:
                by_key.setdefault(event.key, []).append(event)
            for key, events in by_key.items():
                stored = sessions.get(key, [])
                frozen = [s for s in stored if s.last_ms + gap + lateness <= wm]
                still_open = [
                    Session(s.first_ms, s.last_ms, s.events, False)
                    for s in stored
                    if s.last_ms + gap + lateness > wm
                ]
                fresh = [Session(e.time_ms, e.time_ms, [e], True) for e in events]
                kept = list(frozen)
                late_here = 0
                for s in _merge_all(still_open + fresh, gap):
                    if s.only_this_batch and s.last_ms + gap + lateness <= wm:
                        late_here += len(s.events)
                    else:
                        kept.append(s)
                sessions[key] = kept
                run.late += late_here
                run.aggregated += len(events) - late_here

        # The shard's watermark moves at the end of the batch, late events included.
        for event in valid:
            shard_max[shard] = max(shard_max[shard], event.time_ms)
        watermark = max(watermark, min(m - delay for m in shard_max))

    # Rounds: one batch per shard that still has records, shards in order; the closer
    # runs between rounds, but closing never changes a result (final is final), so it is
    # not modelled.
    positions = [0] * shards
    while any(positions[i] < len(queues[i]) for i in range(shards)):
        for i in range(shards):
            if positions[i] < len(queues[i]):
                batch = queues[i][positions[i] : positions[i] + batch_size]
                positions[i] += len(batch)
                process_batch(batch, i)

    # Flush: every window closes, once, final.
    if isinstance(window, TumblingWindow | SlidingWindow):
        for (key, ws), events in windows.items():
            run.results.append(_result(pipeline, key, ws, ws + window.size, events))
    else:
        for key, key_sessions in sessions.items():
            for s in key_sessions:
                run.results.append(
                    _result(pipeline, key, s.first_ms, s.last_ms + window.gap, s.events)
                )
    return run


def _result(
    pipeline: Pipeline, key: tuple[Any, ...], start: int, end: int, events: list[Event]
) -> dict[str, Any]:
    return {
        "pipeline": pipeline.name,
        "key": dict(zip(pipeline.key, key, strict=True)),
        "window_start": start,
        "window_end": end,
        "aggregates": aggregate(pipeline, events),
        "version": 1,
        "final": True,
    }
