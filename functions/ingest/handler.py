"""Ingest function: a Kinesis or Kafka batch -> tidegate.ingest -> partial-failure response.

Wiring only. Powertools' BatchProcessor hands records to a callback one at a time; the
ingest needs the whole batch at once (it groups by key and pane and writes each group once),
so the partial-failure response is built here from the ingest's outcome.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tidegate import observe, sources
from tidegate.mini_batch import is_window_event
from tidegate.runtime import Runtime

# Configured by the environment (the CDK construct sets it); these defaults serve local runs.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tidegate-ingest")
logger = Logger(service=SERVICE)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "tidegate")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
_state: dict[str, Any] = {}


def _ingestor() -> Any:
    if "ingestor" not in _state:
        _state["ingestor"] = Runtime.from_env().ingestor()
        metrics.set_default_dimensions(pipeline=_state["ingestor"].pipeline.name)
    return _state["ingestor"]


def reset() -> None:
    """Forget the cold-start state (the local runner reuses the process between runs)."""
    _state.clear()
    metrics.clear_default_dimensions()
    metrics.clear_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = sources.records_of(event)
    ingestor = _ingestor()
    time_left = getattr(context, "get_remaining_time_in_millis", None)
    state: dict[str, str] | None = None
    if is_window_event(event):
        # A tumbling window of the event source mapping (`mini_batch`): the batch is folded
        # into the window's state, written on its final invocation.
        outcome, state = ingestor.process_window(
            records, event.get("state"), bool(event.get("isFinalInvokeForWindow")), time_left
        )
    else:
        outcome = ingestor.process(records, time_left_ms=time_left)
    observe.report("ingest", outcome)
    if records:
        logger.info(
            "batch processed",
            extra={
                "partition": records[0].partition,
                "first_position": records[0].position,
                "last_position": records[-1].position,
                "records": outcome.records,
                "aggregated": outcome.aggregated,
                "late": outcome.late,
                "dead_lettered": outcome.dead_lettered,
                "duplicates_skipped": outcome.duplicates_skipped,
                "failed": len(outcome.failed),
                "watermark": outcome.watermark,
            },
        )
    metrics.add_metric(name="Processed", unit=MetricUnit.Count, value=outcome.records)
    metrics.add_metric(name="Aggregated", unit=MetricUnit.Count, value=outcome.aggregated)
    metrics.add_metric(name="Buffered", unit=MetricUnit.Count, value=outcome.buffered)
    metrics.add_metric(name="Late", unit=MetricUnit.Count, value=outcome.late)
    metrics.add_metric(name="DeadLettered", unit=MetricUnit.Count, value=outcome.dead_lettered)
    metrics.add_metric(
        name="DuplicatesSkipped", unit=MetricUnit.Count, value=outcome.duplicates_skipped
    )
    response = sources.failure_response(event, outcome.failed)
    if state is not None:
        response["state"] = state  # without it Lambda takes the invocation as failed
    return response
