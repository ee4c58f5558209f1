"""Where closed windows are published: Kinesis, SQS, SNS or EventBridge."""

from __future__ import annotations

from tidegate.sinks.base import Sink
from tidegate.spec import EventBridgeSink, KinesisSink, Pipeline, SnsSink, SqsSink


def sink_for(pipeline: Pipeline, target: str) -> Sink:
    """`target` is the deployed resource: stream name, queue URL, topic ARN or bus name."""
    spec = pipeline.sink
    if isinstance(spec, KinesisSink):
        from tidegate.sinks.kinesis import KinesisResultSink

        return KinesisResultSink(target or spec.stream)
    if isinstance(spec, SqsSink):
        from tidegate.sinks.sqs import SqsResultSink

        return SqsResultSink(target)
    if isinstance(spec, SnsSink):
        from tidegate.sinks.sns import SnsResultSink

        return SnsResultSink(target)
    if isinstance(spec, EventBridgeSink):
        from tidegate.sinks.eventbridge import EventBridgeResultSink

        return EventBridgeResultSink(target or spec.bus, spec.source, spec.detail_type)
    raise TypeError(f"unknown sink {spec!r}")
