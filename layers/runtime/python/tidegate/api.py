"""Pipelines in Python: the pipeline file's sections as functions.

Each function returns the section as the file would write it, and `pipeline(...)` validates
the whole through the same path as a file (`tidegate.spec.parse_pipeline`): the same
models, the same `path: message` problems in one `PipelineError`, and the same spec
(`Pipeline.to_json()`), so a pipeline can move between YAML and code without a difference.

    from tidegate import api as tg

    clicks = tg.pipeline(
        name="clickstream",
        source=tg.kinesis("user-events", shards=2),
        schema=tg.schema("UserEvent", userId="string", timestamp="timestamp",
                         action=tg.enum("click", "purchase"), value="number"),
        event_time="timestamp",
        key="userId",
        window=tg.tumbling("1m"),
        watermark=tg.watermark(delay="5s"),
        aggregates={"count": tg.count(), "total_value": tg.sum("value")},
        sink=tg.kinesis_sink("analytics-output"),
    )

Imports nothing beyond the spec module; `to_yaml` imports PyYAML when called.
"""

from __future__ import annotations

import json
from typing import Any

from tidegate.spec import Pipeline, parse_pipeline

Duration = str | int  # "250ms", "5s", "1m", "1h", "1d", or integer milliseconds
Section = dict[str, Any]


def _given(**settings: Any) -> Section:
    """A section with the settings that were given: an absent one keeps the file's default."""
    return {name: value for name, value in settings.items() if value is not None}


# -- sources -------------------------------------------------------------------------------
def kinesis(stream: str, *, shards: int | None = None, arn: str | None = None) -> Section:
    return _given(type="kinesis", stream=stream, shards=shards, arn=arn)


def msk(topic: str, *, shards: int | None = None) -> Section:
    return _given(type="msk", topic=topic, shards=shards)


# -- schemas -------------------------------------------------------------------------------
def schema(name: str, version: int = 1, /, **fields: str | Section) -> Section:
    """An inline schema: `field=type`, type one of string, integer, number, boolean,
    timestamp (a trailing `?` makes it optional), or `enum(...)`."""
    return {"name": name, "version": version, "fields": fields}


def enum(*values: str | int, optional: bool = False) -> Section:
    return _given(enum=list(values), optional=optional or None)


def model_schema(ref: str, *, version: int = 1, name: str | None = None) -> Section:
    """A Pydantic model as the schema: `ref` is `package.module:Model`."""
    return _given(ref=ref, version=version, name=name)


# -- windows and watermark -----------------------------------------------------------------
def tumbling(size: Duration) -> Section:
    return {"type": "tumbling", "size": size}


def sliding(size: Duration, slide: Duration) -> Section:
    return {"type": "sliding", "size": size, "slide": slide}


def session(gap: Duration, *, max_length: Duration | None = None) -> Section:
    return _given(type="session", gap=gap, max_length=max_length)


def watermark(
    *,
    delay: Duration | None = None,
    idle_timeout: Duration | None = None,
    max_future_skew: Duration | None = None,
    advance_when_idle: bool | None = None,
) -> Section:
    return _given(delay=delay, idle_timeout=idle_timeout, max_future_skew=max_future_skew,
                  advance_when_idle=advance_when_idle)


# -- aggregates ----------------------------------------------------------------------------
# Named as the file names the ops (`tg.sum("value")` reads as `{op: sum, field: value}`);
# they shadow the builtins in this module only, which uses none of them.
def count() -> Section:
    return {"op": "count"}


def sum(field: str) -> Section:
    return {"op": "sum", "field": field}


def min(field: str) -> Section:
    return {"op": "min", "field": field}


def max(field: str) -> Section:
    return {"op": "max", "field": field}


def avg(field: str) -> Section:
    return {"op": "avg", "field": field}


# -- sinks ---------------------------------------------------------------------------------
def kinesis_sink(stream: str) -> Section:
    return {"type": "kinesis", "stream": stream}


def sqs_sink(queue: str) -> Section:
    return {"type": "sqs", "queue": queue}


def sns_sink(topic: str) -> Section:
    return {"type": "sns", "topic": topic}


def eventbridge_sink(
    bus: str | None = None, *, source: str | None = None, detail_type: str | None = None
) -> Section:
    return _given(type="eventbridge", bus=bus, source=source, detail_type=detail_type)


# -- the pipeline --------------------------------------------------------------------------
def pipeline(**sections: Any) -> Pipeline:
    """Validate the sections as a pipeline file with them would be, and return the same
    frozen `Pipeline` model; raises `PipelineError` listing every problem by its path."""
    return parse_pipeline(_given(**sections), source=f"pipeline {sections.get('name', '')}"
                          .strip())


def to_dict(spec: Pipeline) -> dict[str, Any]:
    """The pipeline as a file would hold it (durations written as `5s`, defaults left out)."""
    document: dict[str, Any] = json.loads(
        spec.model_dump_json(by_alias=True, exclude_none=True, exclude_defaults=True))
    return document


def to_yaml(spec: Pipeline) -> str:
    import yaml

    text: str = yaml.safe_dump(to_dict(spec), sort_keys=False)
    return text
