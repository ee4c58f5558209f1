"""Pipeline files: the public format of CONTRACT.md, refused with every problem by path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import pipeline_spec
from tidegate.spec import (
    PipelineError,
    SlidingWindow,
    TumblingWindow,
    load_pipeline_file,
    parse_pipeline,
    pipeline_from_json,
)

CONTRACT_EXAMPLE = """\
name: user-activity                 # [a-z0-9-]+, unique per stage
source:
  type: kinesis                     # kinesis | msk
  stream: user-events               # Kinesis stream name (msk: topic)
  shards: 2                         # optional
format: json                        # json | avro (Glue Schema Registry wire format)
schema:                             # inline, or `ref: package.module:PydanticModel`
  name: UserEvent
  version: 1
  fields:                           # string | integer | number | boolean | timestamp
    userId: string                  # | {enum: [a, b]}; a trailing `?` makes it optional
    timestamp: timestamp            # epoch ms integer or ISO-8601 string with offset
    action: {enum: [click, purchase]}
    value: number
event_time: timestamp               # the field that holds event time
key: [userId]                       # aggregation key, one or more fields
window: {type: tumbling, size: 1m}  # sliding: {size, slide}; session: {gap}
watermark: {delay: 5s, idle_timeout: 1m, max_future_skew: 5m}
allowed_lateness: 0s
aggregates:                         # op: count | sum | min | max | avg
  count: {op: count}
  total_value: {op: sum, field: value}
emit: final                         # final | updates
sink: {type: kinesis, stream: analytics-output}   # kinesis | sqs | sns | eventbridge
"""


def problems_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(spec)
    return caught.value.problems


def test_the_contract_example_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "user-activity.yaml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")

    pipeline = load_pipeline_file(path)

    assert pipeline.name == "user-activity"
    assert pipeline.source.type == "kinesis"
    assert pipeline.source.shards == 2
    assert pipeline.event_time == "timestamp"
    assert pipeline.key == ["userId"]
    assert isinstance(pipeline.window, TumblingWindow)
    assert pipeline.window.size == 60_000
    assert pipeline.watermark.delay == 5_000
    assert pipeline.watermark.idle_timeout == 60_000
    assert pipeline.watermark.max_future_skew == 300_000
    assert pipeline.allowed_lateness == 0
    assert {n: (a.op, a.field) for n, a in pipeline.aggregates.items()} == {
        "count": ("count", None),
        "total_value": ("sum", "value"),
    }
    assert pipeline.emit == "final"
    assert pipeline.sink.type == "kinesis"


def test_defaults_when_optional_sections_are_absent() -> None:
    spec = pipeline_spec()
    for optional in ("watermark", "allowed_lateness", "emit", "format"):
        spec.pop(optional)

    pipeline = parse_pipeline(spec)

    assert pipeline.watermark.delay == 0
    assert pipeline.watermark.max_future_skew is None  # old data is never suspicious
    assert pipeline.allowed_lateness == 0
    assert pipeline.emit == "final"
    assert pipeline.format == "json"


def test_a_single_key_field_may_be_written_as_a_string() -> None:
    assert parse_pipeline(pipeline_spec(key="user")).key == ["user"]


def test_spec_survives_the_json_round_trip_of_the_lambda_environment() -> None:
    pipeline = parse_pipeline(pipeline_spec(window={"type": "sliding", "size": "1m",
                                                    "slide": 250}))

    again = pipeline_from_json(pipeline.to_json())

    assert again == pipeline
    assert isinstance(again.window, SlidingWindow)
    assert (again.window.size, again.window.slide) == (60_000, 250)


@pytest.mark.parametrize(
    ("written", "ms"),
    [
        ("250ms", 250),
        ("5s", 5_000),
        ("1m", 60_000),
        ("1h", 3_600_000),
        ("1d", 86_400_000),
        ("90s", 90_000),
        (1500, 1_500),
        ("1500", 1_500),
    ],
)
def test_durations(written: str | int, ms: int) -> None:
    pipeline = parse_pipeline(pipeline_spec(window={"type": "tumbling", "size": written}))
    assert pipeline.window.size == ms


@pytest.mark.parametrize("size", ["0s", 0, "0ms"])
def test_zero_window_size_is_refused_by_path(size: str | int) -> None:
    assert problems_of(pipeline_spec(window={"type": "tumbling", "size": size})) == [
        "window.size: must be a positive duration"
    ]


@pytest.mark.parametrize("written", ["-5s", "5 minutes", "1w", "1.5s", "", True])
def test_malformed_durations_are_refused_by_path(written: Any) -> None:
    problems = problems_of(pipeline_spec(watermark={"delay": written}))
    assert len(problems) == 1
    assert problems[0].startswith("watermark.delay: ")


def test_every_problem_of_a_file_is_listed_each_by_its_path() -> None:
    # GIVEN a file with five independent mistakes in different sections
    spec = pipeline_spec(
        name="Bad Name",
        window={"type": "tumbling", "size": "0s"},
        watermark={"delay": "soon"},
        aggregates={"n": {"op": "count"}, "peak": {"op": "max"}},
        bogus=1,
    )

    # WHEN it is parsed
    problems = problems_of(spec)

    # THEN each mistake is reported once, at its own path
    assert sorted(p.split(":", 1)[0] for p in problems) == sorted(
        ["name", "window.size", "watermark.delay", "aggregates.peak", "bogus"]
    )
    assert "window.size: must be a positive duration" in problems
    assert "bogus: unknown setting" in problems


def test_cross_section_problems_are_all_listed() -> None:
    spec = pipeline_spec(
        event_time="when",
        key=["user", "region"],
        aggregates={"total": {"op": "sum", "field": "user"}, "x": {"op": "avg", "field": "w"}},
    )

    problems = problems_of(spec)

    assert sorted(problems) == sorted(
        [
            "event_time: schema has no field 'when'",
            "key[1]: schema has no field 'region'",
            "aggregates.total.field: sum needs a numeric field; 'user' is string",
            "aggregates.x.field: schema has no field 'w'",
        ]
    )


def test_section_and_cross_section_problems_are_listed_together() -> None:
    spec = pipeline_spec(window={"type": "tumbling", "size": "0s"}, event_time="when")

    problems = problems_of(spec)

    assert sorted(problems) == [
        "event_time: schema has no field 'when'",
        "window.size: must be a positive duration",
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"sink": None}, "sink: is required"),
        (
            {"window": {"type": "sliding", "size": "10s", "slide": "20s"}},
            "window.slide: must not exceed size (every event must fall in a window)",
        ),
        ({"name": "x" * 41}, "name: "),
        ({"key": []}, "key: "),
        ({"aggregates": {}}, "aggregates: "),
        ({"event_time": "user"}, "event_time: field 'user' is string, not timestamp"),
        (
            {"schema": {"name": "R", "fields": {"user": "string", "ts": "timestamp",
                                                "v": "float"}}},
            "schema.fields: v: unknown type 'float'",
        ),
        (
            {"schema": {"name": "R", "fields": {"user": "string?", "ts": "timestamp",
                                                "v": "number"}}},
            "key[0]: key field 'user' must not be optional",
        ),
        ({"allowed_lateness": "-1s"}, "allowed_lateness: "),
        ({"emit": "sometimes"}, "emit: "),
        ({"mini_batch": {"allow_latency": "16m"}}, "mini_batch.allow_latency: at most 15m"),
        ({"mini_batch": {"allow_latency": "1500ms"}}, "mini_batch.allow_latency: whole seconds"),
        ({"mini_batch": {"latency": "1m"}}, "mini_batch.latency: unknown setting"),
        (
            {"mini_batch": {"allow_latency": "60s"}},
            "mini_batch.allow_latency: 60000 ms must be below watermark.idle_timeout (60000 ms)",
        ),
        (
            {"capacity": {"mode": "provisioned", "write_units": {"min": 10, "max": 5}}},
            "capacity.write_units: max (5) must not be below min (10)",
        ),
        ({"capacity": {"mode": "reserved"}}, "capacity.mode: "),
        (
            {"mini_batch": {"allow_latency": "30s"},
             "window": {"type": "session", "gap": "5s", "max_length": "1m"}},
            "mini_batch: not available for session windows with window.max_length",
        ),
    ],
)
def test_single_problems_name_their_path(overrides: dict[str, Any], expected: str) -> None:
    spec = pipeline_spec(**{k: v for k, v in overrides.items() if v is not None})
    for name in [k for k, v in overrides.items() if v is None]:
        spec.pop(name)

    problems = problems_of(spec)

    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_non_mapping_document_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump(["not", "a", "pipeline"]), encoding="utf-8")

    with pytest.raises(PipelineError) as caught:
        load_pipeline_file(path)

    assert caught.value.problems == ["(top level): must be a mapping of settings"]


def test_unreadable_and_unparseable_files_are_pipeline_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")

    with pytest.raises(PipelineError) as missing:
        load_pipeline_file(tmp_path / "absent.yaml")
    with pytest.raises(PipelineError) as invalid:
        load_pipeline_file(broken)

    assert missing.value.problems[0].startswith("(file): cannot read")
    assert invalid.value.problems[0].startswith("(file): not valid YAML")
