"""`tidegate local run` (shared/CONTRACT.md)."""

from __future__ import annotations

import argparse
import base64
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tidegate.spec import Pipeline, load_pipeline_file
from tidegate_dev.cli.console import err, progress_bar, reasons_table
from tidegate_dev.cli.errors import CliError, check_input, check_output
from tidegate_dev.local.resources import LocalDeployment
from tidegate_dev.local.runner import read_event_lines, run_pipeline


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(", ", ": ")) + "\n")


class _Follow:
    def __init__(self) -> None:
        self.stop = threading.Event()

    def caught_up(self, url: str, deployment: LocalDeployment) -> None:
        print(f"following {deployment.source_stream} on {url} (dead-letter queue "
              f"{deployment.dlq_url}); stop with Ctrl-C or SIGTERM", file=sys.stderr, flush=True)


@contextmanager
def _stoppable(follow: _Follow | None) -> Iterator[None]:
    """Ctrl-C and SIGTERM end a followed run cleanly: it takes what is on the stream,
    closes every window and prints the summary."""
    if follow is None:
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in saved:
        signal.signal(sig, lambda *_: follow.stop.set())
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def outcome_rows(messages: list[dict]) -> list[dict]:
    """Dead letters and late records as `--dead-letters` / `--late` write them: the queue
    message as it is (reason, detail, source coordinates, data_b64 for a redrive), plus
    `payload`, the record's text when it is UTF-8 and was kept whole."""
    rows = []
    for message in messages:
        row = dict(message)
        row.pop("pipeline", None)
        payload = None
        if not message.get("data_truncated"):
            try:
                payload = base64.b64decode(message.get("data_b64", "")).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                payload = None
        row["payload"] = payload
        rows.append(row)
    return rows


def shard_count(args: argparse.Namespace, pipeline: Pipeline) -> int:
    """--shards, else the file's `source.shards`, else 1."""
    shards = args.shards if args.shards is not None else (pipeline.source.shards or 1)
    if shards < 1 or args.batch_size < 1:
        raise CliError("--shards and --batch-size must be at least 1", exit_code=2)
    return shards


def local_run(args: argparse.Namespace) -> int:
    # Everything a run reads or writes is checked first: a run is never lost at the end.
    check_input(args.events, "--events")
    # (--timeline makes its own folder.)
    for flag in ("results", "summary", "dead_letters", "late"):
        check_output(getattr(args, flag, None), f"--{flag.replace('_', '-')}")
    pipeline = load_pipeline_file(args.pipeline)
    shards = shard_count(args, pipeline)
    lines = read_event_lines(args.events)
    recorder = None
    if getattr(args, "timeline", None):
        import matplotlib  # noqa: F401 - drawn after the run: a missing extra must stop it before

        from tidegate_dev.ops.timeline import TimelineRecorder

        recorder = TimelineRecorder(pipeline)
    follow = _Follow() if getattr(args, "follow", False) else None
    if follow is not None and pipeline.source.type == "msk":
        # The local Kafka feed gives each run a topic of its own and lets go of it at the end.
        raise CliError("--follow reads Kinesis sources only so far", exit_code=2)
    with progress_bar("ingesting", enabled=not args.quiet) as progress, _stoppable(follow):
        output = run_pipeline(
            pipeline,
            lines,
            shards=shards,
            batch_size=args.batch_size,
            endpoint_url=args.endpoint_url,
            flush=not args.no_flush,
            progress=progress,
            chaos_seed=args.chaos,
            kafka_bootstrap=args.kafka_bootstrap,
            observer=recorder,
            follow=follow,
        )
    write_jsonl(args.results, output.results)
    if getattr(args, "dead_letters", None):
        write_jsonl(args.dead_letters, outcome_rows(output.dead_letters))
    if getattr(args, "late", None):
        write_jsonl(args.late, outcome_rows(output.late))
    if recorder is not None:
        from tidegate_dev.ops.timeline import render

        print(f"timeline: {render(recorder, args.timeline)}", file=sys.stderr)
    summary_json = json.dumps(output.summary)
    if args.summary:
        Path(args.summary).write_text(summary_json + "\n", encoding="utf-8")
    if output.chaos is not None:
        faults = ", ".join(f"{k} x{v}" for k, v in output.chaos.items()) or "none"
        print(f"chaos seed {args.chaos}: injected {faults}", file=sys.stderr)
    print(summary_json, flush=True)
    table = reasons_table(output.dead_letters, output.late)
    if table is not None and not args.quiet:
        # On stderr: the summary stays the last line of stdout, for scripts.
        err.print(table)
    return 0
