"""A pipeline built in Python is the pipeline the same YAML gives: same spec, same problems."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tidegate import api as tg
from tidegate.spec import PipelineError, load_pipeline_file, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]


def test_the_clickstream_pipeline_in_code_is_the_file() -> None:
    built = tg.pipeline(
        name="clickstream",
        source=tg.kinesis("user-events", shards=2),
        schema=tg.schema("UserEvent", userId="string", timestamp="timestamp",
                         action=tg.enum("click", "purchase"), value="number"),
        event_time="timestamp",
        key=["userId"],
        window=tg.tumbling("1m"),
        watermark=tg.watermark(delay="5s", idle_timeout="1m", max_future_skew="5m"),
        aggregates={"count": tg.count(), "total_value": tg.sum("value"),
                    "max_value": tg.max("value")},
        sink=tg.kinesis_sink("analytics-output"),
    )
    assert built.to_json() == load_pipeline_file(ROOT / "pipelines/clickstream.yaml").to_json()


@pytest.mark.parametrize("window", [tg.sliding("10s", "5s"), tg.session("5s", max_length="1m")])
def test_every_section_builder_gives_what_the_file_would(window: dict) -> None:
    sections = {
        "name": "all-sections", "source": tg.msk("events", shards=3),
        "schema": tg.schema("E", 2, u="string", t="timestamp", v="number?",
                            kind=tg.enum("a", "b", optional=True)),
        "event_time": "t", "key": "u", "window": window,
        "watermark": tg.watermark(delay=250, advance_when_idle=False),
        "aggregates": {"n": tg.count(), "lo": tg.min("v"), "mean": tg.avg("v")},
        "sink": tg.eventbridge_sink("bus", detail_type="Result"),
    }
    as_yaml = yaml.safe_dump(sections, sort_keys=False)
    assert tg.pipeline(**sections).to_json() == parse_pipeline(yaml.safe_load(as_yaml)).to_json()


def test_a_pipeline_in_code_is_refused_with_the_files_messages() -> None:
    sections = {
        "name": "Bad Name", "source": tg.kinesis("events"),
        "schema": tg.schema("E", user="string", t="timestamp"),
        "event_time": "missing", "key": "user", "window": tg.sliding("1m", "2m"),
        "aggregates": {"total": tg.sum("user")}, "sink": tg.sqs_sink("results"),
    }
    with pytest.raises(PipelineError) as in_code:
        tg.pipeline(**sections)
    with pytest.raises(PipelineError) as in_file:
        parse_pipeline(yaml.safe_load(yaml.safe_dump(sections, sort_keys=False)))
    assert in_code.value.problems == in_file.value.problems
    assert len(in_code.value.problems) >= 3


@pytest.mark.parametrize("path", sorted(ROOT.glob("pipelines/**/*.yaml")),
                         ids=lambda p: p.name)
def test_to_yaml_writes_a_file_that_loads_as_the_same_pipeline(path: Path) -> None:
    pipeline = load_pipeline_file(path)
    assert parse_pipeline(yaml.safe_load(tg.to_yaml(pipeline))).to_json() == pipeline.to_json()
