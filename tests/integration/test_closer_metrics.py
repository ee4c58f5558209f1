"""The closer publishes the metric the WatermarkLag alarm watches, under the alarm's own
namespace and dimensions (an alarm on a metric nobody emits would stay OK forever)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs.monitoring import CLOSER_SERVICE, METRICS_NAMESPACE, WATERMARK_LAG_METRIC
from tests.support import BASE_MS, deployed, line, seq
from tidegate.topology import ENV_CLOCK


def _emf(out: str) -> list[dict[str, Any]]:
    """Powertools' embedded-metric-format documents among the printed lines."""
    docs = []
    for text in out.splitlines():
        if text.startswith("{") and '"_aws"' in text:
            docs.append(json.loads(text))
    return docs


def test_watermark_lag_is_published_as_the_alarm_expects(
    moto_url: str, make_pipeline: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pipeline = make_pipeline(name="tg-lag")
    with deployed(pipeline, moto_url) as env:
        # GIVEN events up to B + 30 s (watermark B + 28 s with the 2 s delay), and a closer
        # running at processing time B + 100 s
        records = [(seq(i), line("u1", BASE_MS + 10_000 * i, 1)) for i in range(4)]
        assert env.deliver(records) == {"batchItemFailures": []}
        monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
        monkeypatch.setenv(ENV_CLOCK, str(BASE_MS + 100_000))
        capsys.readouterr()
        env.close()
        docs = _emf(capsys.readouterr().out)

    # THEN one metric document carries WatermarkLagMs = processing time - watermark, in the
    # alarm's namespace, with exactly the alarm's dimensions
    (doc,) = [d for d in docs if WATERMARK_LAG_METRIC in d]
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert {"pipeline", "service"} in [set(dims) for dims in directive["Dimensions"]]
    assert (doc["pipeline"], doc["service"]) == ("tg-lag", CLOSER_SERVICE)
    assert doc[WATERMARK_LAG_METRIC] == [100_000 - 28_000]
