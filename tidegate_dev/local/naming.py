"""Resource names of a pipeline on an endpoint, shared by deploy() and the ops commands.

`tidegate status` and `tidegate tail` inspect a pipeline that `tidegate local run` (or a
test) deployed on a shared endpoint; deriving the names in one place keeps them in step.
A deployed stack names its resources itself (its CloudFormation outputs say how).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidegate.spec import (
    EventBridgeSink,
    KinesisSink,
    KinesisSource,
    Pipeline,
    SnsSink,
    SqsSink,
)


@dataclass(frozen=True)
class ResourceNames:
    base: str
    source_stream: str
    table: str
    dlq: str  # queue names, not URLs: a URL depends on the endpoint and account
    late: str
    sink: str  # Kinesis stream, SQS queue, SNS topic name or EventBridge bus
    sink_reader: str | None  # the queue SNS/EventBridge results are read through locally


def resource_names(pipeline: Pipeline, suffix: str = "") -> ResourceNames:
    base = f"tidegate-{pipeline.name}{suffix}"
    if isinstance(pipeline.source, KinesisSource):
        source = f"{pipeline.source.stream}{suffix}"
    else:
        # MSK: the topic lives on the Kafka broker; this stream only carries the shard count
        # the local Kafka feed gives the topic.
        source = f"{base}-topic-shape"
    sink = pipeline.sink
    reader: str | None = None
    if isinstance(sink, KinesisSink):
        sink_name = f"{sink.stream}{suffix}"
    elif isinstance(sink, SqsSink):
        sink_name = f"{sink.queue}{suffix}"
    elif isinstance(sink, SnsSink):
        sink_name, reader = f"{sink.topic}{suffix}", f"{base}-sink-reader"
    elif isinstance(sink, EventBridgeSink):
        sink_name, reader = sink.bus, f"{base}-sink-reader"
    else:  # pragma: no cover - spec validation keeps this out
        raise TypeError(sink)
    return ResourceNames(
        base=base,
        source_stream=source,
        table=f"{base}-state",
        dlq=f"{base}-dlq",
        late=f"{base}-late",
        sink=sink_name,
        sink_reader=reader,
    )
