"""Closer function: woken by watermark advances and by a schedule; closes and publishes."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tidegate.clock import now_ms
from tidegate.runtime import Runtime

# Configured by the environment (the CDK construct sets it); these defaults serve local runs.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tidegate-closer")
logger = Logger(service=SERVICE)
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "tidegate")
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
_state: dict[str, Any] = {}


def _closer() -> Any:
    if "closer" not in _state:
        _state["closer"] = Runtime.from_env().closer()
        metrics.set_default_dimensions(pipeline=_state["closer"].pipeline.name)
    return _state["closer"]


def reset() -> None:
    _state.clear()
    metrics.clear_default_dimensions()
    metrics.clear_metrics()


@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    closer = _closer()
    # `{"flush": true}` closes everything: the end of a bounded (local) run.
    flush = bool(isinstance(event, dict) and event.get("flush"))
    outcome = closer.run(flush=flush)
    _state["last_outcome"] = outcome
    logger.info(
        "close run",
        extra={
            "watermark": outcome.watermark,
            "windows_closed": outcome.windows_closed,
            "results_published": outcome.results_published,
            "publish_failures": outcome.publish_failures,
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
    return {
        "watermark": outcome.watermark,
        "windows_closed": outcome.windows_closed,
        "results_published": outcome.results_published,
        "publish_failures": outcome.publish_failures,
    }
