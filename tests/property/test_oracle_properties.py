"""The full moto-backed path gives the reference oracle's results, whatever the input.

Hypothesis draws a pipeline (window type and sizes, delay, lateness, aggregates, key), event
lines (out of order, bursts, bounds, near 0, malformed) and a shard count and batch size;
`run_pipeline` runs them through Kinesis, the ingest and closer handlers, DynamoDB and the
sink on one moto server, and the oracle computes what DESIGN.md says the answer is.

TIDEGATE_PROPERTY_EXAMPLES sets the examples per window type (default 67: 201 in CI).
The moto server is the suite's one `moto_url` (tests/conftest.py).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tidegate.spec import Pipeline
from tidegate_dev.local import esm
from tidegate_dev.local.esm import KinesisEventSourceMapping
from tidegate_dev.local.runner import RunOutput, run_pipeline

from .oracle import OracleRun, run_oracle
from .strategies import event_lines, pipelines

EXAMPLES = int(os.environ.get("TIDEGATE_PROPERTY_EXAMPLES", "67"))
# Duplicate delivery doubles every handler call; a smaller share keeps CI within budget.
DUPLICATE_EXAMPLES = max(6, EXAMPLES // 10)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same cases on every CI run
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )


# -- comparing ---------------------------------------------------------------------------------
def _identity(result: dict[str, Any]) -> tuple[Any, ...]:
    return (
        json.dumps(result["key"], sort_keys=True, ensure_ascii=False),
        result["window_start"],
        result["window_end"],
        result["version"],
        result["final"],
    )


def _same_value(actual: Any, expected: Any) -> bool:
    # int vs float matters: integers must stay integers (CONTRACT.md).
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)
    return bool(actual == expected)


def _same_aggregates(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    return actual.keys() == expected.keys() and all(
        _same_value(actual[k], expected[k]) for k in expected
    )


def _describe(results: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{_identity(r)} {json.dumps(r['aggregates'], sort_keys=True)}" for r in results)


def assert_matches_oracle(
    pipeline: Pipeline,
    lines: list[bytes],
    shards: int,
    batch_size: int,
    out: RunOutput,
    expected: OracleRun,
) -> None:
    repro = (
        f"\npipeline: {pipeline.to_json()}\nshards={shards} batch_size={batch_size}\n"
        f"lines: {lines!r}\nsummary: {out.summary}\n"
        f"oracle: aggregated={expected.aggregated} late={expected.late} "
        f"dead_lettered={expected.dead_lettered}\n"
        f"actual results: {_describe(out.results)}\n"
        f"oracle results: {_describe(expected.results)}"
    )
    summary = out.summary
    assert summary["events_in"] == len(lines), repro
    assert summary["events_in"] == (
        summary["aggregated"] + summary["late"] + summary["dead_lettered"]
    ), repro
    assert summary["dead_lettered"] == expected.dead_lettered, repro
    assert summary["late"] == expected.late, repro
    assert summary["aggregated"] == expected.aggregated, repro

    # Results as a multiset keyed by (key, window, version, final), then their aggregates.
    actual_ids = Counter(_identity(r) for r in out.results)
    expected_ids = Counter(_identity(r) for r in expected.results)
    assert actual_ids == expected_ids, repro
    by_id = {_identity(r): r for r in expected.results}
    for result in out.results:
        assert result["pipeline"] == pipeline.name, repro
        want = by_id[_identity(result)]["aggregates"]
        assert _same_aggregates(result["aggregates"], want), (
            f"{_identity(result)}: {result['aggregates']} != {want}{repro}"
        )


def check(
    pipeline: Pipeline, lines: list[bytes], shards: int, batch_size: int, moto_url: str
) -> RunOutput:
    expected = run_oracle(pipeline, lines, shards=shards, batch_size=batch_size)
    # Shown by --hypothesis-show-statistics: how often the interesting paths are taken.
    event(f"late events: {'yes' if expected.late else 'no'}")
    event(f"dead letters: {'yes' if expected.dead_lettered else 'no'}")
    event(f"results: {min(len(expected.results), 5)}{'+' if len(expected.results) >= 5 else ''}")
    out = run_pipeline(pipeline, lines, shards=shards, batch_size=batch_size, endpoint_url=moto_url)
    assert_matches_oracle(pipeline, lines, shards, batch_size, out, expected)
    return out


# -- duplicate delivery ------------------------------------------------------------------------
class TwiceDelivered(KinesisEventSourceMapping):
    """Every batch reaches the handler twice, as a Lambda retry after a lost response would."""

    def __init__(self, stream: str, handler: Any, **kwargs: Any) -> None:
        def twice(event: dict[str, Any], context: Any) -> Any:
            handler(event, context)
            return handler(event, context)

        super().__init__(stream, twice, **kwargs)


# -- the properties ----------------------------------------------------------------------------
@st.composite
def cases(draw: st.DrawFn, window_type: str) -> tuple[Pipeline, list[bytes], int, int]:
    pipeline = draw(pipelines(window_type))
    lines = draw(event_lines(pipeline))
    shards = draw(st.integers(1, 3))
    batch_size = draw(st.integers(1, 5))
    return pipeline, lines, shards, batch_size


def _run_case(case: tuple[Pipeline, list[bytes], int, int], moto_url: str) -> None:
    pipeline, lines, shards, batch_size = case
    check(pipeline, lines, shards, batch_size, moto_url)


@_settings(EXAMPLES)
@given(case=cases("tumbling"))
def test_tumbling_matches_oracle(moto_url: str, case: Any) -> None:
    _run_case(case, moto_url)


@_settings(EXAMPLES)
@given(case=cases("sliding"))
def test_sliding_matches_oracle(moto_url: str, case: Any) -> None:
    _run_case(case, moto_url)


@_settings(EXAMPLES)
@given(case=cases("session"))
def test_session_matches_oracle(moto_url: str, case: Any) -> None:
    _run_case(case, moto_url)


def _run_twice_delivered(case: tuple[Pipeline, list[bytes], int, int], moto_url: str) -> None:
    pipeline, lines, shards, batch_size = case
    # The runner's feed looks the mapping class up at call time, so it gets this one.
    with mock.patch.object(esm, "KinesisEventSourceMapping", TwiceDelivered):
        out = check(pipeline, lines, shards, batch_size, moto_url)
    # Every aggregated record came a second time and was recognised; late ones are judged
    # again (still late) and dead letters are sent again (deduplicated by coordinates).
    assert out.summary["duplicates_skipped"] == out.summary["aggregated"], out.summary


@_settings(DUPLICATE_EXAMPLES)
@given(case=st.sampled_from(["tumbling", "sliding"]).flatmap(cases))
def test_duplicate_delivery_changes_nothing(moto_url: str, case: Any) -> None:
    _run_twice_delivered(case, moto_url)


@_settings(DUPLICATE_EXAMPLES)
@given(case=cases("session"))
def test_duplicate_delivery_changes_nothing_for_sessions(moto_url: str, case: Any) -> None:
    _run_twice_delivered(case, moto_url)
