"""One pipeline through the real handlers on the embedded moto server, with the runner's loop
order (one ingest round, then one closer run), instrumented: requests per phase and the
time from each ingest round to the closer's publication of what it made final."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tidegate.spec import Pipeline
from tidegate_dev.bench.requests import RequestCounter
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.feeds import open_feed
from tidegate_dev.local.resources import deploy
from tidegate_dev.local.runner import handler_environment


@dataclass
class CloserRun:
    seconds: float
    windows_closed: int
    final: bool  # the end-of-run flush: not a watermark-driven close


@dataclass
class LocalRun:
    rounds: int
    ingest_seconds: float
    closer_runs: list[CloserRun] = field(default_factory=list)
    # Processing time from the end of the ingest round that made a window final to the
    # return of the sink publish that carried its result, one entry per result.
    latencies_s: list[float] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)


def drive(
    pipeline: Pipeline,
    lines: list[bytes],
    counter: RequestCounter,
    batch_size: int,
    run_closer: bool,
    window_batches: int | None = None,
) -> LocalRun:
    """Run on the endpoint already set up (tidegate_dev.local.server.endpoint)."""
    deployment = deploy(pipeline, 1, f"-{uuid.uuid4().hex[:6]}")
    with handler_environment(deployment) as (ingest, closer, observed):

        def counted_ingest(event: dict[str, Any], context: Any) -> Any:
            with counter.phase_of("ingest"):
                return ingest.handler(event, context)

        esm = open_feed(deployment, lines, counted_ingest, batch_size,
                        window_batches=window_batches)
        run = LocalRun(rounds=0, ingest_seconds=0.0)
        round_end = [0.0]
        flushing = [False]
        if run_closer:
            with counter.phase_of("closer"):
                sink = closer.current_closer().sink
            publish = sink.publish

            def timed_publish(results: list[Any]) -> Any:
                failed = publish(results)
                if not flushing[0]:
                    now = time.perf_counter()
                    run.latencies_s += [now - round_end[0]] * (len(results) - len(failed))
                return failed

            sink.publish = timed_publish

        def close(flush: bool) -> None:
            flushing[0] = flush
            start = time.perf_counter()
            with counter.phase_of("closer"):
                out = closer.handler({"flush": True} if flush else {},
                                     LambdaContext("tidegate-closer"))
            run.closer_runs.append(
                CloserRun(time.perf_counter() - start, int(out["windows_closed"]), flush)
            )

        while esm.pending():
            start = time.perf_counter()
            esm.deliver_round()
            round_end[0] = time.perf_counter()
            run.ingest_seconds += round_end[0] - start
            run.rounds += 1
            if run_closer:
                close(flush=False)
        if run_closer:
            close(flush=True)
        run.summary = dict(observed.totals)
    return run
