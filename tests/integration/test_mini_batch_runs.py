"""`mini_batch` end to end (`tidegate local run`'s path): on late-free input every window kind
gives exactly the results it gives without it, whatever the shards, batch size, where the
event source mapping's windows end, and the chaos seed; accounting still balances."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import BASE_MS as B
from tests.support import assert_accounting, line
from tidegate.spec import Pipeline
from tidegate_dev.local.runner import run_pipeline

DELAY_MS = 4_000


def _late_free(seed: int, events: int = 160) -> list[bytes]:
    """Out of order, but never more than half the delay behind any earlier event: late at no
    shard's watermark."""
    rng = random.Random(seed)
    out, top = [], B
    for _ in range(events):
        t = top - rng.randrange(DELAY_MS // 2) if rng.random() < 0.3 else top + rng.randrange(900)
        top = max(top, t)
        out.append(line(f"u{rng.randrange(7)}", t, rng.choice([1, 2, 2.5, 7, -3])))
    return out


class WindowEnds:
    """Counts the event source mapping's final window invocations the ingest answered."""

    def __init__(self) -> None:
        self.finals = 0

    def on_batch(self, event: dict[str, Any]) -> None:
        self.finals += bool(event.get("isFinalInvokeForWindow"))

    def on_round(self, outcome: Any, flush: bool) -> None:
        pass

    def on_finish(self, output: Any) -> None:
        pass


def _results(out: Any) -> list[str]:
    """Each result once (a re-publish has the same idempotency key and content)."""
    return sorted({json.dumps(r, sort_keys=True) for r in out.results})


@pytest.mark.parametrize(("window", "shards", "batch_size", "window_batches", "chaos"), [
    ({"type": "tumbling", "size": "10s"}, 1, 7, None, None),
    ({"type": "tumbling", "size": "10s"}, 3, 5, 2, None),
    ({"type": "tumbling", "size": "10s"}, 2, 11, 1, 7),
    ({"type": "sliding", "size": "10s", "slide": "5s"}, 2, 4, 3, None),
    ({"type": "sliding", "size": "10s", "slide": "5s"}, 3, 9, None, 11),
    ({"type": "session", "gap": "3s"}, 1, 6, 2, None),
    ({"type": "session", "gap": "1500ms"}, 3, 5, None, None),
    ({"type": "session", "gap": "3s"}, 2, 8, 3, 5),
], ids=["tumbling-1x7", "tumbling-3x5-w2", "tumbling-chaos", "sliding-2x4-w3", "sliding-chaos",
        "session-1x6-w2", "session-3x5", "session-chaos"])
def test_mini_batch_gives_the_results_of_writing_every_batch(
    moto_url: str, make_pipeline: Callable[..., Pipeline], window: dict[str, Any], shards: int,
    batch_size: int, window_batches: int | None, chaos: int | None,
) -> None:
    lines = _late_free(shards * 100 + batch_size)
    common: dict[str, Any] = dict(window=window, watermark={"delay": f"{DELAY_MS}ms"})
    # GIVEN the same pipeline without and with mini-batch pre-aggregation
    plain = run_pipeline(make_pipeline(**common), lines, shards=shards, batch_size=batch_size,
                         endpoint_url=moto_url)

    # WHEN the input runs with it on (windows of the mapping ending after `window_batches`)
    ends = WindowEnds()
    folded = run_pipeline(
        make_pipeline(**common, mini_batch={"allow_latency": "30s"}), lines, shards=shards,
        batch_size=batch_size, endpoint_url=moto_url, window_batches=window_batches,
        chaos_seed=chaos, observer=ends,
    )

    # THEN the same results, each event counted once
    assert _results(folded) == _results(plain)
    assert folded.summary["aggregated"] == plain.summary["aggregated"] == len(lines)
    assert_accounting(folded.summary)
    batches_per_shard = len(lines) / shards / batch_size
    assert ends.finals >= shards if window_batches is None else (
        ends.finals >= min(shards, batches_per_shard // window_batches))


def test_the_documented_example_gives_the_tumbling_examples_results(tmp_path: Any) -> None:
    from tests.integration.test_cli import REPO, run_cli

    examples = REPO / "pipelines" / "examples"
    outputs = {}
    for name in ("tumbling", "mini-batch"):
        proc = run_cli("local", "run", examples / f"{name}.yaml",
                       "--events", examples / "events.jsonl",
                       "--results", tmp_path / f"{name}.jsonl", "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outputs[name] = sorted(
            (json.dumps(r["key"]), r["window_start"], json.dumps(r["aggregates"]))
            for r in map(json.loads, (tmp_path / f"{name}.jsonl").read_text().splitlines()))
    assert outputs["mini-batch"] == outputs["tumbling"]
    assert len(outputs["tumbling"]) == 5


@pytest.mark.parametrize(("source", "fmt"), [
    ({"type": "msk", "topic": "tg-events"}, "json"),
    ({"type": "kinesis", "stream": "tg-events"}, "avro"),
], ids=["kafka-json", "kinesis-avro"])
def test_mini_batch_on_kafka_and_avro_with_allowed_lateness(
    moto_url: str, make_pipeline: Callable[..., Pipeline], source: dict[str, Any], fmt: str,
) -> None:
    # GIVEN late-free input, a lateness allowance, and a Kafka source (no tumbling window in
    # its mapping: each batch is folded and written at once) or Avro records
    lines = _late_free(5)
    common: dict[str, Any] = dict(window={"type": "sliding", "size": "10s", "slide": "5s"},
                                  watermark={"delay": f"{DELAY_MS}ms"},
                                  allowed_lateness="3s", source=source, format=fmt)
    plain = run_pipeline(make_pipeline(**common), lines, shards=2, batch_size=6,
                         endpoint_url=moto_url)

    folded = run_pipeline(make_pipeline(**common, mini_batch={"allow_latency": "20s"}), lines,
                          shards=2, batch_size=6, endpoint_url=moto_url, window_batches=4)

    assert _results(folded) == _results(plain)
    assert folded.summary["aggregated"] == len(lines)
    assert_accounting(folded.summary)


def _by_version(out: Any) -> dict[tuple[str, int, int, int], str]:
    """Results by (key, window, version); one version published with two contents fails."""
    seen: dict[tuple[str, int, int, int], set[str]] = {}
    for r in out.results:
        ident = (json.dumps(r["key"]), r["window_start"], r["window_end"], r["version"])
        seen.setdefault(ident, set()).add(json.dumps(r["aggregates"], sort_keys=True))
    assert all(len(v) == 1 for v in seen.values()), seen
    return {k: next(iter(v)) for k, v in seen.items()}


def _finals(out: Any) -> list[tuple[str, int, int, str]]:
    return sorted((json.dumps(r["key"]), r["window_start"], r["window_end"],
                   json.dumps(r["aggregates"], sort_keys=True)) for r in out.results if r["final"])


@pytest.mark.parametrize("window", [
    {"type": "tumbling", "size": "10s"},
    {"type": "sliding", "size": "10s", "slide": "5s"},
    {"type": "session", "gap": "3s"},
], ids=["tumbling", "sliding", "session"])
def test_updates_with_mini_batch_end_in_the_final_results_of_writing_every_batch(
    moto_url: str, make_pipeline: Callable[..., Pipeline], window: dict[str, Any],
) -> None:
    lines = _late_free(21, events=200)
    common: dict[str, Any] = dict(window=window, watermark={"delay": f"{DELAY_MS}ms"},
                                  allowed_lateness="6s", emit="updates")
    plain = run_pipeline(make_pipeline(**common), lines, shards=2, batch_size=6,
                         endpoint_url=moto_url)
    pipeline = make_pipeline(**common, mini_batch={"allow_latency": "20s"})

    # WHEN the same input runs with mini-batch, cleanly and under chaos
    folded = run_pipeline(pipeline, lines, shards=2, batch_size=6, endpoint_url=moto_url,
                          window_batches=2)
    chaotic = run_pipeline(pipeline, lines, shards=2, batch_size=6, endpoint_url=moto_url,
                           window_batches=2, chaos_seed=3)

    # THEN early versions came before the final ones, each version has one content, later
    # versions of a window hold more events, and the final results are those without it
    assert any(not r["final"] for r in folded.results)
    versions = _by_version(folded)
    finals = {(json.dumps(r["key"]), r["window_start"], r["window_end"], r["version"])
              for r in folded.results if r["final"]}
    for ident, content in versions.items():
        key, start, end, version = ident
        earlier = [json.loads(c)["n"] for (k, s, e, v), c in versions.items()
                   if (k, s, e) == (key, start, end) and v < version]
        if earlier:  # a final version may repeat the last early one's content
            n = json.loads(content)["n"]
            assert n >= max(earlier) if ident in finals else n > max(earlier)
    assert _finals(folded) == _finals(plain)
    assert len(_finals(folded)) == len({(k, s, e) for k, s, e, _ in versions})
    assert _by_version(chaotic) == versions
    assert_accounting(folded.summary)
