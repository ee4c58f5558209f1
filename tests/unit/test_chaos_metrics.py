"""Local chaos mimics a dying Lambda process, metrics included."""

from __future__ import annotations

import pytest


def test_a_chaos_crash_drops_the_invocations_unflushed_metrics_as_a_dying_process_would(
) -> None:
    from aws_lambda_powertools import Metrics

    from tidegate_dev.local.chaos import Chaos, ChaosCrash

    metrics = Metrics(namespace="tidegate-test", service="closer")
    chaos = Chaos(seed=1)
    with pytest.raises(ChaosCrash), chaos.invocation("closer"):
        metrics.add_metric(name="WindowsClosed", unit="Count", value=1)
        raise ChaosCrash("killed")
    assert metrics.metric_set == {}
    # an invocation that completes keeps them, for its own flush
    with chaos.invocation("closer"):
        metrics.add_metric(name="WindowsClosed", unit="Count", value=1)
    assert "WindowsClosed" in metrics.metric_set
    metrics.clear_metrics()
