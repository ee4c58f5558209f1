"""Hostile input never crashes or stalls a batch: each bad record is dead-lettered with a
precise reason, and the records around it are aggregated."""

from __future__ import annotations

import base64
import json
import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidegate.rejections import Rejected
from tidegate.schemas.decode import Event, JsonDecoder
from tidegate.schemas.event_model import compile_schema
from tidegate.spec import Pipeline, parse_pipeline
from tidegate_dev.local.runner import run_pipeline

FUZZ_EXAMPLES = int(os.environ.get("TIDEGATE_FUZZ_EXAMPLES", "1500"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

PIPELINE: Pipeline = parse_pipeline({
    "name": "hostile",
    "source": {"type": "kinesis", "stream": "events"},
    "schema": {"name": "E", "fields": {
        "user": "string", "t": "timestamp", "action": {"enum": ["click", "purchase"]},
        "v": "number", "note": "string?",
    }},
    "event_time": "t",
    "key": ["user"],
    "window": {"type": "tumbling", "size": "1m"},
    "aggregates": {"n": {"op": "count"}, "total": {"op": "sum", "field": "v"}},
    "sink": {"type": "kinesis", "stream": "results"},
})
DECODER = JsonDecoder(PIPELINE, compile_schema(PIPELINE))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "user": st.one_of(st.text(max_size=30), st.integers(), st.none(), st.booleans()),
        "t": st.one_of(
            st.integers(min_value=-(10**20), max_value=10**20), st.floats(), st.text(max_size=40),
            st.sampled_from(["2024-01-01T00:00:00", "2024-01-01T00:00:00Z",
                             "9999-12-31T23:59:59.999-01:00", "0001-01-01T00:00:00+01:00"]),
        ),
        "action": st.one_of(st.sampled_from(["click", "purchase", "refund"]), json_values),
        "v": st.one_of(st.integers(min_value=-(10**30), max_value=10**30), st.floats(),
                       st.text(max_size=5)),
        "note": json_values,
        "extra": json_values,
    },
)


def _decode(data_b64: str) -> Event | Rejected:
    try:
        return DECODER.decode_b64(data_b64)
    except Rejected as rejected:
        assert rejected.reason and rejected.detail  # a reason and what is wrong
        return rejected


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_an_event_or_a_reason(raw: bytes) -> None:
    _decode(base64.b64encode(raw).decode())


@FUZZ
@given(st.text(max_size=120))
def test_any_base64_field_is_an_event_or_a_reason(text: str) -> None:
    out = _decode(text)
    if isinstance(out, Rejected) and out.reason == "invalid_base64":
        assert "base64" in out.detail


@FUZZ
@given(near_valid)
def test_near_valid_objects_are_an_event_or_a_named_field(obj: dict) -> None:
    raw = json.dumps(obj, allow_nan=True).encode()
    out = _decode(base64.b64encode(raw).decode())
    if isinstance(out, Event):
        assert 0 <= out.time_ms <= 253_402_300_799_999
        assert isinstance(obj.get("user"), str)
    else:
        assert out.reason in {"invalid_json", "schema_violation", "invalid_timestamp",
                              "key_too_large"}
        if out.reason != "invalid_json":
            # The detail names the offending field (or the record as a whole).
            assert any(name in out.detail for name in (*obj, "(record)", "user", "t",
                                                       "action", "v"))


GOOD = [
    json.dumps({"user": "u1", "t": 1_700_000_000_000 + i, "action": "click", "v": 1})
    for i in range(5)
]
HOSTILE: dict[str, bytes] = {
    "invalid_utf8": b'{"user": "\xff\xfe", "t": 1}',
    "invalid_json": b'{"user": "u1", "t": 1700000000000, "action": "click", "v": NaN}',
    "deep nesting": b'{"user": "u1", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    "huge number": b'{"user": "u1", "t": 1700000000000, "action": "click", "v": 1'
                   + b"0" * 5_000 + b"}",
    "infinity": b'{"user": "u1", "t": 1700000000000, "action": "click", "v": 1e400}',
    "missing field": b'{"user": "u1", "action": "click", "v": 1}',
    "mistyped field": b'{"user": 7, "t": 1700000000000, "action": "click", "v": 1}',
    "negative time": b'{"user": "u1", "t": -5, "action": "click", "v": 1}',
    "overflowing time": b'{"user": "u1", "t": 100000000000000000000, "action": "click", '
                        b'"v": 1}',
    "naive time": b'{"user": "u1", "t": "2024-01-01T00:00:00", "action": "click", "v": 1}',
    "long key": json.dumps({"user": "\u00e9" * 2_000, "t": 1_700_000_000_000,
                            "action": "click", "v": 1}).encode(),
    "not an object": b"[1, 2, 3]",
    "one mebibyte": b'{"user": "u1", "pad": "' + b"y" * (1024 * 1024 - 40) + b'"}',
}


# Large but valid: a 900 KB optional string is data, not an attack.
LARGE_VALID = json.dumps({"user": "u2", "t": 1_700_000_000_000, "action": "click", "v": 1000,
                          "note": "x" * 900_000}).encode()


def test_a_batch_of_hostile_records_is_dead_lettered_around_good_ones(moto_url: str) -> None:
    # GIVEN good records interleaved with every kind of hostile record, in ONE batch
    lines: list[bytes] = [LARGE_VALID]
    for i, bad in enumerate(HOSTILE.values()):
        lines += [GOOD[i % len(GOOD)].replace('"v": 1', f'"v": {i}').encode(), bad]
    good_count = len(HOSTILE) + 1

    # WHEN they run through the real handlers
    output = run_pipeline(PIPELINE, lines, batch_size=len(lines), endpoint_url=moto_url)

    # THEN every good record is aggregated and every hostile one dead-lettered, with reasons
    summary = output.summary
    assert summary["events_in"] == len(lines)
    assert summary["aggregated"] == good_count
    assert summary["dead_lettered"] == len(HOSTILE)
    assert summary["late"] == 0
    reasons = Counter(d["reason"] for d in output.dead_letters)
    assert reasons["invalid_utf8"] == 1
    assert reasons["key_too_large"] == 1
    assert reasons["invalid_timestamp"] >= 3  # negative, overflowing, naive
    for message in output.dead_letters:
        assert message["detail"]
        assert message["source"]["partition"].startswith("shardId-")
        assert message["source"]["position"]
    total = sum(r["aggregates"]["total"] for r in output.results)
    assert total == sum(range(len(HOSTILE))) + 1000
