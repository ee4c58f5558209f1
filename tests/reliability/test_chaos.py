"""`--chaos SEED`: with crashes, throttling, lost responses, duplicate deliveries and racing
closers injected, every seed gives the clean run's results and accounting."""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tidegate.spec import Pipeline, parse_pipeline
from tidegate_dev.local.runner import RunOutput, run_pipeline
from tidegate_dev.local.server import endpoint

SEEDS = int(os.environ.get("TIDEGATE_CHAOS_SEEDS", "7"))  # per window kind: 21 seeds in CI
WINDOWS = {
    "tumbling": {"type": "tumbling", "size": "10s"},
    "sliding": {"type": "sliding", "size": "10s", "slide": "5s"},
    "session": {"type": "session", "gap": "4s"},
}


def _pipeline(kind: str, emit: str = "final") -> Pipeline:
    return parse_pipeline({
        "name": f"chaos-{kind}",
        "source": {"type": "kinesis", "stream": "events"},
        "schema": {"name": "E", "fields": {"user": "string", "t": "timestamp", "v": "number"}},
        "event_time": "t",
        "key": ["user"],
        "window": WINDOWS[kind],
        "watermark": {"delay": "2s"},
        "allowed_lateness": "3s",
        "aggregates": {
            "n": {"op": "count"}, "total": {"op": "sum", "field": "v"},
            "low": {"op": "min", "field": "v"}, "mean": {"op": "avg", "field": "v"},
        },
        "emit": emit,
        "sink": {"type": "kinesis", "stream": "results"},
    })


def _events(seed: int, count: int = 60) -> list[bytes]:
    rng = random.Random(seed)
    t = 1_700_000_000_000
    lines = []
    for i in range(count):
        t += rng.randint(0, 900)
        when = t - (rng.randint(30_000, 45_000) if rng.random() < 0.08 else rng.randint(0, 2_500))
        event = {"user": f"u{rng.randint(1, 5)}", "t": when, "v": rng.choice([1, 2.5, 7])}
        line = json.dumps(event)
        if i % 23 == 5:
            line = line[:-3]  # truncated: dead-lettered
        lines.append(line.encode())
    return lines


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with endpoint() as url:
        yield url


def _content(output: RunOutput) -> dict[tuple[Any, ...], str]:
    """Results by (key, window, version); two different contents for one is a failure."""
    seen: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for r in output.results:
        ident = (json.dumps(r["key"], sort_keys=True), r["window_start"], r["window_end"],
                 r["version"])
        seen[ident].add(json.dumps(r, sort_keys=True))
    conflicting = {k: v for k, v in seen.items() if len(v) > 1}
    assert not conflicting, f"one window published with different contents: {conflicting}"
    return {k: next(iter(v)) for k, v in seen.items()}


def _accounting(summary: dict[str, int]) -> dict[str, int]:
    keep = ("events_in", "aggregated", "late", "dead_lettered", "results")
    return {k: summary[k] for k in keep}


@pytest.mark.parametrize("kind", sorted(WINDOWS))
def test_chaos_equals_clean_run(kind: str, moto: str) -> None:
    pipeline = _pipeline(kind)
    lines = _events(seed=11)
    clean = run_pipeline(pipeline, lines, shards=2, batch_size=7, endpoint_url=moto)
    expected = _content(clean)
    assert clean.summary["events_in"] == (
        clean.summary["aggregated"] + clean.summary["late"] + clean.summary["dead_lettered"]
    )
    assert clean.summary["late"] > 0 and clean.summary["dead_lettered"] > 0

    injected_total = 0
    for seed in range(1, SEEDS + 1):
        chaotic = run_pipeline(
            pipeline, lines, shards=2, batch_size=7, endpoint_url=moto, chaos_seed=seed
        )
        assert _content(chaotic) == expected, f"seed {seed}"
        assert _accounting(chaotic.summary) == _accounting(clean.summary), f"seed {seed}"
        # Redelivered records were recognised, not counted twice.
        assert chaotic.summary["duplicates_skipped"] >= 0
        injected_total += sum((chaotic.chaos or {}).values())
    # The harness really injected faults (a silent no-op would pass everything above).
    assert injected_total > SEEDS * 5


def test_chaos_with_update_emits_equals_clean_run(moto: str) -> None:
    pipeline = _pipeline("tumbling", emit="updates")
    lines = _events(seed=12)
    clean = run_pipeline(pipeline, lines, shards=1, batch_size=5, endpoint_url=moto)
    expected = _content(clean)
    assert any(not r["final"] for r in clean.results)  # early versions were published
    for seed in (101, 102, 103):
        chaotic = run_pipeline(
            pipeline, lines, shards=1, batch_size=5, endpoint_url=moto, chaos_seed=seed
        )
        assert _content(chaotic) == expected, f"seed {seed}"
        assert _accounting(chaotic.summary) == _accounting(clean.summary), f"seed {seed}"


def test_same_seed_injects_the_same_faults(moto: str) -> None:
    pipeline = _pipeline("tumbling")
    lines = _events(seed=13, count=40)
    first = run_pipeline(pipeline, lines, shards=1, batch_size=4, endpoint_url=moto,
                         chaos_seed=7)
    second = run_pipeline(pipeline, lines, shards=1, batch_size=4, endpoint_url=moto,
                          chaos_seed=7)
    assert first.chaos == second.chaos
    assert first.chaos
