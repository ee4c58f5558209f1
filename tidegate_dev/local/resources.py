"""Create a pipeline's resources on an endpoint, shaped as the deployed stack has them."""

from __future__ import annotations

from dataclasses import dataclass, field

from tidegate import topology
from tidegate.aws import client
from tidegate.spec import (
    EventBridgeSink,
    KinesisSink,
    Pipeline,
    SnsSink,
    SqsSink,
)
from tidegate_dev.local.naming import resource_names


@dataclass
class LocalDeployment:
    pipeline: Pipeline
    source_stream: str
    table: str
    dlq_url: str
    late_url: str
    sink_target: str
    sink_read_url: str | None = None  # SNS/EventBridge results are read through a queue
    env: dict[str, str] = field(default_factory=dict)


def _queue(name: str) -> str:
    sqs = client("sqs")
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def _stream(name: str, shards: int) -> None:
    kinesis = client("kinesis")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
    )


def deploy(pipeline: Pipeline, shards: int, suffix: str = "") -> LocalDeployment:
    names = resource_names(pipeline, suffix)
    base, source = names.base, names.source_stream
    _stream(source, shards)

    table = f"{base}-state"
    ddb = client("dynamodb")
    ddb.create_table(**topology.table_definition(table))
    ddb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": topology.TTL_ATTRIBUTE},
    )
    dlq_url = _queue(f"{base}-dlq")
    late_url = _queue(f"{base}-late")

    sink = pipeline.sink
    read_url: str | None = None
    if isinstance(sink, KinesisSink):
        target = f"{sink.stream}{suffix}"
        _stream(target, 1)
    elif isinstance(sink, SqsSink):
        target = _queue(f"{sink.queue}{suffix}")
        read_url = target
    elif isinstance(sink, SnsSink):
        target = client("sns").create_topic(Name=f"{sink.topic}{suffix}")["TopicArn"]
        read_url = _queue(f"{base}-sink-reader")
        arn = client("sqs").get_queue_attributes(
            QueueUrl=read_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        client("sns").subscribe(
            TopicArn=target, Protocol="sqs", Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
    elif isinstance(sink, EventBridgeSink):
        target = sink.bus
        if target != "default":
            client("events").create_event_bus(Name=target)
        read_url = _queue(f"{base}-sink-reader")
        arn = client("sqs").get_queue_attributes(
            QueueUrl=read_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        rule = f"{base}-results"
        client("events").put_rule(
            Name=rule, EventBusName=target,
            EventPattern=f'{{"source": ["{sink.source}"]}}',
        )
        client("events").put_targets(
            Rule=rule, EventBusName=target,
            Targets=[{"Id": "reader", "Arn": arn, "InputPath": "$.detail"}],
        )
    else:  # pragma: no cover - spec validation keeps this out
        raise TypeError(sink)

    deployment = LocalDeployment(pipeline, source, table, dlq_url, late_url, target, read_url)
    deployment.env = {
        topology.ENV_PIPELINE: pipeline.to_json(),
        topology.ENV_TABLE: table,
        topology.ENV_DLQ_URL: dlq_url,
        topology.ENV_LATE_URL: late_url,
        topology.ENV_SOURCE_STREAM: source,
        topology.ENV_SINK_TARGET: target,
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": f"tidegate-{pipeline.name}",
    }
    return deployment
