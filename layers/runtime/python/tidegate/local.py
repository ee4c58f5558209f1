"""Run a pipeline on this computer from Python (notebooks, tests): `tidegate.local.run`.

The runtime package ships to Lambda, where the local runner (moto, the event-source-mapping
emulator: `tidegate_dev`) is neither present nor wanted, so this module imports it only
when `run` is called; importing `tidegate.local` costs nothing anywhere. It needs the
`[local]` extra: `pip install 'tidegate[local]'`.

    from tidegate import local
    results, summary, dead_letters, late = local.run("pipelines/clickstream.yaml", events)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from tidegate.spec import Pipeline


class LocalRun(NamedTuple):
    """What `tidegate local run` writes to its files, as Python values."""

    results: list[dict[str, Any]]  # published results, as RESULTS.jsonl holds them
    summary: dict[str, int]  # events_in == aggregated + late + dead_lettered
    dead_letters: list[dict[str, Any]]  # reason, detail, source coordinates, payload
    late: list[dict[str, Any]]


def _line(event: Mapping[str, Any] | str | bytes) -> bytes:
    # Lines read from a file keep their line ending; the event is the line without it.
    if isinstance(event, bytes):
        return event.rstrip(b"\r\n")
    if isinstance(event, str):
        return event.rstrip("\r\n").encode("utf-8")
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


def run(
    pipeline: Pipeline | str | Path,
    events: Iterable[Mapping[str, Any] | str | bytes],
    *,
    shards: int | None = None,
    batch_size: int = 100,
    endpoint_url: str | None = None,
    flush: bool = True,
) -> LocalRun:
    """Run `pipeline` (a `Pipeline`, or the path of a pipeline file) over `events` (dicts,
    or JSON lines as str/bytes: a line that is not a valid event is dead-lettered, as in a
    file) on an embedded moto server, or on `endpoint_url`, exactly as `tidegate local run`
    does; `shards` defaults to the file's `source.shards`, else 1."""
    from tidegate.spec import load_pipeline_file

    # By name: the dev tooling is neither in the layer nor part of its (strict) type check.
    outcome_rows = import_module("tidegate_dev.cli.local_run").outcome_rows
    run_pipeline = import_module("tidegate_dev.local.runner").run_pipeline
    spec = pipeline if not isinstance(pipeline, str | Path) else load_pipeline_file(pipeline)
    output = run_pipeline(
        spec,
        # Blank lines are skipped, as in an events file.
        [line for line in map(_line, events) if line.strip()],
        shards=shards if shards is not None else (spec.source.shards or 1),
        batch_size=batch_size,
        endpoint_url=endpoint_url,
        flush=flush,
    )
    return LocalRun(output.results, output.summary, outcome_rows(output.dead_letters),
                    outcome_rows(output.late))
