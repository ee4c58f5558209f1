"""`tidegate local run`: one pipeline, end to end, on the embedded (or given) endpoint."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidegate.spec import Pipeline
from tidegate_dev.local import readback
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.feeds import open_feed
from tidegate_dev.local.producer import partition_key, put_events  # noqa: F401 - public here
from tidegate_dev.local.resources import LocalDeployment, deploy
from tidegate_dev.local.server import endpoint

Progress = Callable[[int, int], None]  # (records checkpointed, events in)


@dataclass
class RunOutput:
    summary: dict[str, int]
    results: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0


def read_event_lines(path: str | Path) -> list[bytes]:
    """Each non-blank line, as bytes: an invalid line is still sent (and dead-lettered)."""
    lines = Path(path).read_bytes().split(b"\n")
    return [line.rstrip(b"\r") for line in lines if line.strip()]


@contextmanager
def handler_environment(deployment: LocalDeployment) -> Iterator[tuple[Any, Any]]:
    """Set the deployed environment contract and return freshly cold-started handlers."""
    from functions.closer import handler as closer_handler
    from functions.ingest import handler as ingest_handler

    saved = {k: os.environ.get(k) for k in deployment.env}
    os.environ.update(deployment.env)
    ingest_handler.reset()
    closer_handler.reset()
    # Loggers read their level when the module is first imported; apply this run's.
    for module in (ingest_handler, closer_handler):
        module.logger.setLevel(deployment.env["POWERTOOLS_LOG_LEVEL"])
    try:
        yield ingest_handler, closer_handler
    finally:
        ingest_handler.reset()
        closer_handler.reset()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_pipeline(
    pipeline: Pipeline,
    lines: list[bytes],
    shards: int = 1,
    batch_size: int = 100,
    endpoint_url: str | None = None,
    flush: bool = True,
    progress: Progress | None = None,
) -> RunOutput:
    with endpoint(endpoint_url):
        # A shared endpoint may hold earlier runs: give this run's resources their own names.
        suffix = "" if endpoint_url is None else f"-{uuid.uuid4().hex[:8]}"
        deployment = deploy(pipeline, shards, suffix)
        with handler_environment(deployment) as (ingest, closer):
            esm = open_feed(deployment, lines, ingest.handler, batch_size)
            rounds = 0
            while esm.pending():
                esm.deliver_round()
                rounds += 1
                closer.handler({}, LambdaContext("tidegate-closer"))
                if progress:
                    progress(esm.stats.records_checkpointed, len(lines))
            duplicates = int(ingest._state.get("totals", {}).get("duplicates_skipped", 0))
            if flush:
                closer.handler({"flush": True}, LambdaContext("tidegate-closer"))
            return _collect(deployment, len(lines), duplicates, rounds)


def _collect(
    deployment: LocalDeployment, events_in: int, duplicates: int, rounds: int
) -> RunOutput:
    results = readback.results(deployment)
    dead = readback.distinct_records(readback.drain_queue(deployment.dlq_url))
    late = readback.distinct_records(readback.drain_queue(deployment.late_url))
    summary = {
        "events_in": events_in,
        "aggregated": readback.aggregated_count(deployment),
        "late": len(late),
        "dead_lettered": len(dead),
        "duplicates_skipped": duplicates,
        "results": len(results),
    }
    return RunOutput(summary, results, list(dead.values()), list(late.values()), rounds)
