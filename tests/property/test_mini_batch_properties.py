"""`mini_batch` changes when state is written, never what is published: on late-free input,
for every window kind, shard count, batch size, place the event source mapping's windows
end, chaos seed, lateness and `emit` mode, the final results are those of writing every
batch. Both runs go through `tidegate local run`'s path on the suite's moto server.

TIDEGATE_PROPERTY_EXAMPLES / 5 examples per window kind (default 13).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import BASE_MS, assert_accounting, line, pipeline_spec
from tidegate.spec import parse_pipeline
from tidegate_dev.local.runner import run_pipeline

EXAMPLES = max(4, int(os.environ.get("TIDEGATE_PROPERTY_EXAMPLES", "67")) // 5)
DELAY_MS = 3_000
WINDOWS = {
    "tumbling": {"type": "tumbling", "size": "5s"},
    "sliding": {"type": "sliding", "size": "6s", "slide": "2s"},
    "session": {"type": "session", "gap": "2s"},
}


@st.composite
def late_free_lines(draw: st.DrawFn) -> list[bytes]:
    """Out of order by less than the watermark delay: late at no shard's watermark."""
    steps = draw(st.lists(st.tuples(
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(-DELAY_MS // 2 + 1, 1_500),
        st.sampled_from([1, 2, 2.5, -4]),
    ), min_size=1, max_size=40))
    top, out = BASE_MS, []
    for user, step, value in steps:
        t = top + step
        top = max(top, t)
        out.append(line(user, t, value))
    return out


def _finals(out: Any) -> list[tuple[str, int, int, str]]:
    return sorted({(json.dumps(r["key"]), r["window_start"], r["window_end"],
                    json.dumps(r["aggregates"], sort_keys=True))
                   for r in out.results if r["final"]})


def _check(moto_url: str, window: str, data: st.DataObject) -> None:
    lines = data.draw(late_free_lines(), label="lines")
    shards = data.draw(st.integers(1, 3), label="shards")
    batch_size = data.draw(st.integers(1, 9), label="batch_size")
    window_batches = data.draw(st.none() | st.integers(1, 4), label="window_batches")
    chaos = data.draw(st.none() | st.integers(1, 50), label="chaos")
    emit = data.draw(st.sampled_from(["final", "updates"]), label="emit")
    lateness = data.draw(st.sampled_from(["0s", "2s"]), label="allowed_lateness")
    spec: dict[str, Any] = dict(window=WINDOWS[window], watermark={"delay": f"{DELAY_MS}ms"},
                                emit=emit, allowed_lateness=lateness)

    plain = run_pipeline(parse_pipeline(pipeline_spec(**spec)), lines, shards=shards,
                         batch_size=batch_size, endpoint_url=moto_url)
    folded = run_pipeline(
        parse_pipeline(pipeline_spec(**spec, mini_batch={"allow_latency": "10s"})), lines,
        shards=shards, batch_size=batch_size, endpoint_url=moto_url,
        window_batches=window_batches, chaos_seed=chaos)

    assert _finals(folded) == _finals(plain)
    assert folded.summary["aggregated"] == plain.summary["aggregated"] == len(lines)
    assert_accounting(folded.summary)


def _settings() -> settings:
    return settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


@_settings()
@given(data=st.data())
def test_tumbling(moto_url: str, data: st.DataObject) -> None:
    _check(moto_url, "tumbling", data)


@_settings()
@given(data=st.data())
def test_sliding(moto_url: str, data: st.DataObject) -> None:
    _check(moto_url, "sliding", data)


@_settings()
@given(data=st.data())
def test_session(moto_url: str, data: st.DataObject) -> None:
    _check(moto_url, "session", data)
