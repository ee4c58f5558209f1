"""Feeding a local run: put the events on the pipeline's source and open the mapping that
delivers them to the ingest handler (Kinesis here; Kafka for `source.type: msk`)."""

from __future__ import annotations

from typing import Any, Protocol

from tidegate_dev.local import esm
from tidegate_dev.local.esm import DeliveryStats
from tidegate_dev.local.producer import put_events
from tidegate_dev.local.resources import LocalDeployment


class EventSourceMapping(Protocol):
    stats: DeliveryStats

    def pending(self) -> bool: ...

    def deliver_round(self) -> int: ...


def open_feed(
    deployment: LocalDeployment, lines: list[bytes], handler: Any, batch_size: int
) -> EventSourceMapping:
    """Put every line on the source, in file order, and return the mapping to drive."""
    pipeline = deployment.pipeline
    put_events(deployment.source_stream, pipeline, lines)
    # Looked up at call time so tests can substitute the mapping class.
    return esm.KinesisEventSourceMapping(
        deployment.source_stream, handler, batch_size=batch_size
    )
