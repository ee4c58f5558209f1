"""Closer function: woken by watermark advances and by a schedule; closes and publishes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tidegate.runtime import Runtime

logger = Logger(service="tidegate-closer")
metrics = Metrics(namespace="tidegate", service="tidegate-closer")
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
