"""Pipelines and event lines for the property tests (and a pipeline builder for examples)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from tidegate.spec import Pipeline, SessionWindow, parse_pipeline

FIELDS: dict[str, Any] = {
    "user": "string",
    "kind": {"enum": ["x", "y"]},
    "ts": "timestamp",
    "v": "number",
    "n": "integer",
    "opt": "number?",
}

# Every op over every kind of field: ints, floats, and an optional field that may be absent.
AGGREGATES: dict[str, dict[str, str]] = {
    "count": {"op": "count"},
    "count_opt": {"op": "count", "field": "opt"},
    "sum_v": {"op": "sum", "field": "v"},
    "sum_n": {"op": "sum", "field": "n"},
    "sum_opt": {"op": "sum", "field": "opt"},
    "min_v": {"op": "min", "field": "v"},
    "max_v": {"op": "max", "field": "v"},
    "min_n": {"op": "min", "field": "n"},
    "max_opt": {"op": "max", "field": "opt"},
    "avg_v": {"op": "avg", "field": "v"},
    "avg_opt": {"op": "avg", "field": "opt"},
}

USERS = ["a", "b", "c", "é"]  # a non-ASCII key: the partition key escapes it, the state not


def make_pipeline(
    window: dict[str, Any],
    delay: int = 0,
    lateness: int = 0,
    aggregates: dict[str, dict[str, str]] | None = None,
    key: list[str] | None = None,
    index_shards: int = 4,
) -> Pipeline:
    return parse_pipeline(
        {
            "name": "prop",
            "source": {"type": "kinesis", "stream": "prop-events"},
            "schema": {"name": "PropEvent", "version": 1, "fields": FIELDS},
            "event_time": "ts",
            "key": key or ["user"],
            "window": window,
            # Runs last seconds: no shard may count as idle, every shard holds the minimum.
            "watermark": {"delay": delay, "idle_timeout": "1h"},
            "allowed_lateness": lateness,
            "aggregates": aggregates or {"count": {"op": "count"}},
            "sink": {"type": "kinesis", "stream": "prop-results"},
            "index_shards": index_shards,
        }
    )


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


# -- pipelines ---------------------------------------------------------------------------------
@st.composite
def pipelines(draw: st.DrawFn, window_type: str) -> Pipeline:
    unit = draw(st.sampled_from([1, 1000]))
    if window_type == "tumbling":
        window: dict[str, Any] = {"type": "tumbling", "size": draw(st.integers(5, 60)) * unit}
    elif window_type == "sliding":
        size = draw(st.integers(5, 60))
        # At most 3 windows per event: each closed window costs about ten moto round trips.
        slide = draw(st.integers(-(-size // 3), size))
        window = {"type": "sliding", "size": size * unit, "slide": slide * unit}
    else:
        window = {"type": "session", "gap": draw(st.integers(5, 60)) * unit}
    delay = draw(st.one_of(st.just(0), st.integers(0, 20))) * unit
    lateness = draw(st.one_of(st.just(0), st.integers(0, 20))) * unit
    names = draw(st.lists(st.sampled_from(sorted(AGGREGATES)), min_size=1, max_size=4, unique=True))
    key = draw(st.sampled_from([["user"], ["user", "kind"]]))
    index_shards = draw(st.sampled_from([1, 2, 4]))
    return make_pipeline(
        window, delay, lateness, {n: AGGREGATES[n] for n in names}, key, index_shards
    )


@dataclass(frozen=True)
class Scale:
    """Where a run's event times fall: a few windows, on a grid of `unit` ms."""

    length: int  # window size or session gap
    unit: int
    span: int  # times are drawn from [0, span]


def scale_of(pipeline: Pipeline) -> Scale:
    w = pipeline.window
    length = w.gap if isinstance(w, SessionWindow) else w.size
    unit = 1000 if length % 1000 == 0 and length >= 5000 else 1
    # Past size + delay + lateness, so that late events happen; few windows past that, as
    # closing each costs about ten moto round trips.
    span = 2 * length + pipeline.watermark.delay + pipeline.allowed_lateness
    return Scale(length, unit, span)


# -- events ------------------------------------------------------------------------------------
def _iso(ms: int, offset_h: int, zulu: bool) -> str:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = at.astimezone(timezone(timedelta(hours=offset_h))).isoformat()
    return text.replace("+00:00", "Z") if zulu else text


@st.composite
def times(draw: st.DrawFn, scale: Scale) -> int:
    """On the unit grid, exactly on a window bound, or near 0; sometimes off by 1 ms."""
    base = draw(
        st.one_of(
            st.integers(0, scale.span // scale.unit).map(lambda k: k * scale.unit),
            st.integers(0, scale.span // scale.length).map(lambda k: k * scale.length),
            st.integers(0, 3 * scale.unit),  # near 0: sliding windows start before it
        )
    )
    jitter = draw(st.sampled_from([0, 0, 0, -1, 1]))
    return max(0, base + jitter)


numbers = st.one_of(
    st.integers(-50, 50),
    st.integers(-100, 100).map(lambda k: k + 0.25),
    st.sampled_from([0.1, 0.2, 0.7, -0.3, 2**53 + 1]),  # decimal sums; an int a float cannot hold
)


@st.composite
def valid_event(draw: st.DrawFn, scale: Scale, users: list[str]) -> dict[str, Any]:
    t = draw(times(scale))
    ts: Any = t
    form = draw(st.sampled_from(["int"] * 6 + ["iso", "float"]))
    if form == "iso":
        ts = _iso(t, draw(st.sampled_from([0, 2, -5])), draw(st.booleans()))
    elif form == "float":
        ts = float(t)
    event: dict[str, Any] = {
        "user": draw(st.sampled_from(users)),
        "kind": draw(st.sampled_from(["x", "y"])),
        "ts": ts,
        "v": draw(numbers),
        "n": draw(st.one_of(st.integers(-1000, 1000), st.just(2**62))),
    }
    opt = draw(st.sampled_from(["absent", "null", "value"]))
    if opt == "null":
        event["opt"] = None
    elif opt == "value":
        event["opt"] = draw(numbers)
    if draw(st.integers(0, 9)) == 0:
        event["extra"] = "ignored"  # unknown fields are ignored, not refused
    return event


MALFORMED_RAW = [b"not json", b'{"user": "a", "ts": ', b"[1, 2]", b"42", b"null", b"\xffab"]

# Field -> a wrong value for it (None = drop the field).
CORRUPTIONS: list[tuple[str, Any]] = [
    ("ts", None),
    ("ts", -5),
    ("ts", True),
    ("ts", "soon"),
    ("ts", "1970-01-01T00:00:01"),  # naive: no offset
    ("ts", 1.5),
    ("v", "3"),
    ("n", 2.5),
    ("user", 7),
    ("user", None),
    ("kind", "z"),
    ("opt", "x"),
]


@st.composite
def malformed_line(draw: st.DrawFn, scale: Scale, users: list[str]) -> bytes:
    if draw(st.booleans()):
        return draw(st.sampled_from(MALFORMED_RAW))
    event = draw(valid_event(scale, users))
    name, value = draw(st.sampled_from(CORRUPTIONS))
    if value is None:
        del event[name]
    else:
        event[name] = value
    return line(event)


@st.composite
def event_lines(draw: st.DrawFn, pipeline: Pipeline, max_events: int = 25) -> list[bytes]:
    scale = scale_of(pipeline)
    # Two or more keys, so that several shards usually have data (a silent shard holds the
    # watermark at -inf and nothing is ever late).
    users = draw(st.lists(st.sampled_from(USERS), min_size=2, max_size=4, unique=True))
    lines: list[bytes] = []
    for _ in range(draw(st.integers(2, 14))):
        kind = draw(st.sampled_from(["event"] * 7 + ["burst", "malformed"]))
        if kind == "malformed":
            lines.append(draw(malformed_line(scale, users)))
            continue
        event = draw(valid_event(scale, users))
        if kind == "event":
            lines.append(line(event))
        else:  # a burst: several events of one time, maybe of different keys
            burst = draw(st.lists(st.sampled_from(users), min_size=2, max_size=4))
            lines += [line({**event, "user": u}) for u in burst]
    return lines[:max_events]
