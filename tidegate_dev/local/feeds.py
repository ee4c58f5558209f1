"""Feeding a local run: put the events on the pipeline's source and open the mapping that
delivers them to the ingest handler (Kinesis here; Kafka for `source.type: msk`).

With `format: avro` each line is first encoded in the Glue Schema Registry wire format
against the pipeline's schema, registered in the local Glue registry (tidegate_dev.local.glue).
Either way the partition key is the aggregation key read from the original line.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from tidegate import topology
from tidegate.aws import client
from tidegate_dev.local import esm
from tidegate_dev.local.esm import DeliveryStats
from tidegate_dev.local.producer import partition_key, put_events
from tidegate_dev.local.resources import LocalDeployment

_PUT_BATCH = 500


class EventSourceMapping(Protocol):
    stats: DeliveryStats

    def pending(self) -> bool: ...

    def deliver_round(self) -> int: ...


def open_feed(
    deployment: LocalDeployment,
    lines: list[bytes],
    handler: Any,
    batch_size: int,
    chaos: Any = None,
    kafka_bootstrap: str | None = None,
    window_batches: int | None = None,
) -> EventSourceMapping:
    """Put every line on the source, in file order, and return the mapping to drive."""
    pipeline = deployment.pipeline
    payloads = lines
    if pipeline.format == "avro":
        from tidegate_dev.local.glue import encode_lines, register_schema

        payloads = encode_lines(pipeline, lines, register_schema(pipeline))
    if pipeline.source.type == "msk":
        return _open_kafka(deployment, lines, payloads, handler, batch_size, chaos,
                           kafka_bootstrap)
    if payloads is lines:
        put_events(deployment.source_stream, pipeline, lines)
    else:
        _put_keyed(deployment.source_stream, [partition_key(pipeline, x) for x in lines],
                   payloads)
    # Looked up at call time so tests can substitute the mapping class.
    # `mini_batch`: the mapping's tumbling window, as the construct sets it.
    window_s = pipeline.mini_batch.allow_latency // 1000 or None
    return esm.KinesisEventSourceMapping(
        deployment.source_stream, handler, batch_size=batch_size, chaos=chaos,
        tumbling_window_s=window_s, window_batches=window_batches,
    )


def _put_keyed(stream: str, keys: list[str], payloads: list[bytes]) -> None:
    """put_events for payloads whose partition key comes from elsewhere (the JSON line)."""
    kinesis = client("kinesis")
    for i in range(0, len(payloads), _PUT_BATCH):
        pending = [
            {"Data": data, "PartitionKey": key}
            for key, data in zip(keys[i : i + _PUT_BATCH], payloads[i : i + _PUT_BATCH],
                                 strict=True)
        ]
        while pending:
            out = kinesis.put_records(StreamName=stream, Records=pending)
            results = zip(pending, out["Records"], strict=True)
            pending = [rec for rec, res in results if res.get("ErrorCode")]


def _open_kafka(
    deployment: LocalDeployment,
    lines: list[bytes],
    payloads: list[bytes],
    handler: Any,
    batch_size: int,
    chaos: Any,
    kafka_bootstrap: str | None,
) -> EventSourceMapping:
    from tidegate_dev.local import kafka

    pipeline = deployment.pipeline
    # deploy() made the stream with the run's shard count; the topic gets as many partitions.
    summary = client("kinesis").describe_stream_summary(StreamName=deployment.source_stream)
    partitions = int(summary["StreamDescriptionSummary"]["OpenShardCount"])
    mapping = kafka.open_topic_feed(
        pipeline.source.topic_name,  # type: ignore[union-attr]
        partitions,
        [partition_key(pipeline, line) for line in lines],
        payloads,
        handler,
        batch_size,
        chaos=chaos,
        kafka_bootstrap=kafka_bootstrap,
    )
    # The handlers read their environment at cold start, which comes with the first batch:
    # until then the partition list can still be given, so a partition that has not been
    # read yet holds the watermark back exactly as an unread Kinesis shard does.
    names = ",".join(part.name for part in mapping.partitions)
    deployment.env[topology.ENV_SOURCE_PARTITIONS] = names
    os.environ[topology.ENV_SOURCE_PARTITIONS] = names
    return mapping
