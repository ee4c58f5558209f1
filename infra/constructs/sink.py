"""The result sink of a pipeline: the resource, what the closer is told, and its grant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Acknowledgment as Ack
from aws_cdk import RemovalPolicy, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.encryption import (
    acknowledge_stream_key,
    queue_encryption,
    stream_encryption,
)
from tidegate.spec import EventBridgeSink, KinesisSink, Pipeline, SnsSink, SqsSink


@dataclass(frozen=True)
class SinkBinding:
    """`target` is the value of ENV_SINK_TARGET, as tidegate.sinks.sink_for reads it."""

    resource: kinesis.IStream | sqs.IQueue | sns.ITopic | events.IEventBus
    target: str
    # The resource's own narrowest "may publish" grant (jsii interfaces cannot be
    # isinstance-checked, so each branch below names it).
    grant_publish: Callable[[iam.IGrantable], iam.Grant]


def create_sink(
    scope: Construct,
    pipeline: Pipeline,
    *,
    name_suffix: str,
    removal_policy: RemovalPolicy,
    encryption_key: kms.IKey | None = None,
) -> SinkBinding:
    """The spec names the sink, so its physical name is the spec's (plus the stage suffix)."""
    spec = pipeline.sink
    if isinstance(spec, KinesisSink):
        stream = kinesis.Stream(
            scope, "SinkStream",
            stream_name=f"{spec.stream}{name_suffix}",
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            **stream_encryption(encryption_key),
            removal_policy=removal_policy,
        )
        acknowledge_stream_key(stream, encryption_key)
        return SinkBinding(stream, stream.stream_name, stream.grant_write)
    if isinstance(spec, SqsSink):
        queue = sqs.Queue(
            scope, "SinkQueue",
            queue_name=f"{spec.queue}{name_suffix}",
            **queue_encryption(encryption_key),
            enforce_ssl=True,
            removal_policy=removal_policy,
        )
        Validations.of(queue).acknowledge(Ack(
            id="AwsSolutions-SQS3",
            reason="The results queue is the pipeline's output; its consumers own the redrive "
                   "of results they cannot process (and every result can be re-derived by "
                   "replaying the source stream).",
        ))
        return SinkBinding(queue, queue.queue_url, queue.grant_send_messages)
    if isinstance(spec, SnsSink):
        topic = sns.Topic(
            scope, "SinkTopic",
            topic_name=f"{spec.topic}{name_suffix}",
            # aws/sns unless a customer key is given: subscribers in the account then need
            # no key grant.
            master_key=encryption_key or kms.Alias.from_alias_name(
                scope, "SnsManagedKey", "alias/aws/sns"
            ),
            enforce_ssl=True,
        )
        topic.apply_removal_policy(removal_policy)
        return SinkBinding(topic, topic.topic_arn, topic.grant_publish)
    if isinstance(spec, EventBridgeSink):
        if spec.bus == "default":
            bus: events.IEventBus = events.EventBus.from_event_bus_name(
                scope, "SinkBus", "default"
            )
            return SinkBinding(bus, "default", bus.grant_put_events_to)
        created = events.EventBus(scope, "SinkBus", event_bus_name=f"{spec.bus}{name_suffix}")
        created.apply_removal_policy(removal_policy)
        return SinkBinding(created, created.event_bus_name, created.grant_put_events_to)
    raise TypeError(f"unknown sink {spec!r}")  # pragma: no cover - the spec forbids it
