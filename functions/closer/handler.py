"""Closer function: woken by watermark advances and by a schedule; closes and publishes.

Two roles in one function (tidegate/fanout.py): a wake-up or schedule event makes it the
coordinator, which closes inline or, with many windows due, invokes itself asynchronously
once per group of index partitions; `{"partitions": [...], "watermark": W}` makes it a
worker for those partitions.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tidegate import fanout, observe, topology
from tidegate.clock import now_ms
from tidegate.errors import ConfigurationError
from tidegate.runtime import Runtime

# Configured by the environment (the CDK construct sets it); these defaults serve local runs.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tidegate-closer")
logger = Logger(service=SERVICE)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "tidegate")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
_state: dict[str, Any] = {}
# No new batch is started with less than this left: the rest waits for the next run.
_STOP_MS = 10_000


def current_closer() -> Any:
    """This execution environment's closer, built at cold start."""
    if "closer" not in _state:
        _state["closer"] = Runtime.from_env().closer()
        metrics.set_default_dimensions(pipeline=_state["closer"].pipeline.name)
    return _state["closer"]


def reset() -> None:
    _state.clear()
    metrics.clear_default_dimensions()
    metrics.clear_metrics()


def _whole(name: str, value: str) -> int:
    if not value.isdigit():
        raise ConfigurationError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _workers() -> fanout.Workers | None:
    """Local runs name a thread count; in Lambda the function fans out to itself."""
    local = os.environ.get(topology.ENV_CLOSER_WORKERS)
    if local:
        return fanout.ThreadWorkers(_whole(topology.ENV_CLOSER_WORKERS, local))
    own_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")  # set by the Lambda runtime only
    if own_name:
        # The name, unqualified: what the grant names (infra/constructs/fanout.py).
        return fanout.LambdaWorkers(own_name)
    return None


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    closer = current_closer()
    event = event if isinstance(event, dict) else {}
    role = "worker" if "partitions" in event else "coordinator"

    def keep_going() -> bool:
        return bool(context.get_remaining_time_in_millis() > _STOP_MS)

    if role == "worker":
        order = fanout.WorkOrder.parse(event, closer)
        outcome = fanout.work(closer, order, keep_going=keep_going)
    else:
        threshold = _whole(topology.ENV_FANOUT_THRESHOLD, os.environ.get(
            topology.ENV_FANOUT_THRESHOLD, str(fanout.FANOUT_THRESHOLD)))
        coordinator = fanout.Coordinator(closer, _workers(), threshold)
        # `{"flush": true}` closes everything: the end of a bounded (local) run.
        flush = bool(event.get("flush"))
        # A flush (the end of a bounded local run) closes everything, however long it takes.
        outcome = coordinator.run(flush=flush, keep_going=None if flush else keep_going)
    observe.report("closer", outcome)
    logger.info(
        "close run",
        extra={
            "role": role,
            "watermark": outcome.watermark,
            "windows_closed": outcome.windows_closed,
            "results_published": outcome.results_published,
            "publish_failures": outcome.publish_failures,
            "workers": outcome.workers,
            "refused": outcome.refused,
        },
    )
    metrics.add_metric(name="WindowsClosed", unit=MetricUnit.Count, value=outcome.windows_closed)
    if -(2**61) < outcome.watermark < 2**61:  # not before the first event, nor after a flush
        lag = max(0, now_ms() - outcome.watermark)
        metrics.add_metric(name="WatermarkLagMs", unit=MetricUnit.Milliseconds, value=lag)
    metrics.add_metric(
        name="ResultsPublished", unit=MetricUnit.Count, value=outcome.results_published
    )
    metrics.add_metric(
        name="PublishFailures", unit=MetricUnit.Count, value=outcome.publish_failures
    )
    if outcome.workers:
        metrics.add_metric(name="CloserWorkers", unit=MetricUnit.Count, value=outcome.workers)
    return {
        "watermark": outcome.watermark,
        "windows_closed": outcome.windows_closed,
        "results_published": outcome.results_published,
        "publish_failures": outcome.publish_failures,
        "workers": outcome.workers,
    }
