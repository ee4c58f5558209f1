"""`tidegate dlq list|show|redrive`: what the dead-letter queue holds, and putting it back.

Nothing is consumed by `list` and `show` (dlq_read.py); `redrive` deletes a message only
once its record is back on the source (dlq_redrive.py).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from tidegate.schemas.eventtime import format_ms
from tidegate.spec import load_pipeline_file
from tidegate_dev.ops.common import Targets
from tidegate_dev.ops.dlq_read import Queue, describe, read_all, summarize
from tidegate_dev.ops.dlq_redrive import Redrive, load_fix, render_redrive, run_redrive

_DATA_PREVIEW = 400


def render_list(url: str, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from tidegate_dev.cli.console import out

    total = sum(r["messages"] for r in rows)
    records = sum(r["records"] for r in rows)
    table = Table(title=f"{url}\n{total} message(s), {records} distinct record(s); "
                        "nothing was consumed")
    table.add_column("reason", no_wrap=True)
    table.add_column("messages", justify="right")
    table.add_column("records", justify="right")
    table.add_column("oldest arrival", no_wrap=True)
    table.add_column("example detail", overflow="fold")
    for row in rows:
        oldest = row["first_arrival_ms"]
        table.add_row(row["reason"], str(row["messages"]), str(row["records"]),
                      "-" if oldest is None else format_ms(oldest)[:19].replace("T", " "),
                      (row["example"] or "")[:100])
    out.print(table)


def render_show(shown: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    from tidegate_dev.cli.console import out

    for i, item in enumerate(shown, 1):
        out.print(f"[bold]#{i} {escape(item['reason'])}[/]  pipeline {item['pipeline']}  "
                  f"message {item['message_id']}", soft_wrap=True)
        where = "  ".join(f"{k} {v}" for k, v in item["source"].items() if v is not None)
        out.print(f"  source   {escape(where)}", soft_wrap=True)
        if item.get("redrive_of"):
            original = item["redrive_of"]
            out.print(f"  redriven from partition {original.get('partition')} position "
                      f"{original.get('position')}", soft_wrap=True)
        out.print(f"  detail   {escape(str(item['detail']))}", soft_wrap=True)
        data = item["data"]
        if data is None:
            out.print("  data     (missing or not base64)")
        else:
            more = f" … ({len(data)} characters)" if len(data) > _DATA_PREVIEW else ""
            cut = " (truncated in the queue)" if item.get("data_truncated") else ""
            out.print(f"  data     {escape(data[:_DATA_PREVIEW])}{more}{cut}", soft_wrap=True)


def _targets(args: argparse.Namespace) -> Targets:
    from tidegate_dev.ops.common import resolve

    pipeline = load_pipeline_file(args.pipeline)
    targets = resolve(pipeline, stack=args.stack, table=args.table, stream=args.stream,
                      dlq_url=args.dlq_url, late_url=args.late_url, sink=args.sink)
    if pipeline.source.type == "msk":
        # The topic lives on the brokers, not in the stack: as `produce` names it.
        targets.source_stream = args.stream or pipeline.source.topic_name  # type: ignore[union-attr]
    if targets.dlq_url is None:
        raise SystemExit(f"error: no dead-letter queue found for pipeline '{pipeline.name}' "
                         "(give --dlq-url, --stack or --endpoint-url)")
    return targets


def dlq(args: argparse.Namespace) -> int:
    from tidegate_dev.ops.common import aws_endpoint

    with aws_endpoint(args.endpoint_url, args.region):
        targets = _targets(args)
        assert targets.dlq_url is not None
        queue = Queue(targets.dlq_url, confirm_wait_s=0 if args.endpoint_url else 1)
        if args.dlq_command == "list":
            rows = summarize(read_all(queue))
            if args.json:
                print(json.dumps({"queue": targets.dlq_url, "reasons": rows}))
            else:
                render_list(targets.dlq_url, rows)
            return 0
        if args.dlq_command == "show":
            letters = read_all(queue, reason=args.reason, limit=args.limit)
            shown = [describe(letter, targets) for letter in letters]
            if args.json:
                for item in shown:
                    print(json.dumps(item, ensure_ascii=False))
            else:
                render_show(shown)
            return 0
        return _redrive(args, targets, queue)


def _redrive(args: argparse.Namespace, targets: Targets, queue: Queue) -> int:
    pipeline = targets.pipeline
    if args.to_pipeline and args.to_pipeline != pipeline.name:
        raise SystemExit(f"error: --to-pipeline {args.to_pipeline!r} is not the pipeline of "
                         f"{args.pipeline} ('{pipeline.name}'), whose source is the target")
    if args.force and not args.to_pipeline:
        raise SystemExit(
            f"error: --force redrives other pipelines' dead letters into this one: name it "
            f"with --to-pipeline {pipeline.name}")
    if pipeline.source.type == "msk" and not args.kafka_bootstrap and not args.dry_run:
        raise SystemExit("error: this pipeline reads a Kafka topic: give --kafka-bootstrap "
                         "HOST:PORT to redrive onto it")
    if args.fix and pipeline.format != "json":
        raise SystemExit("error: --fix rewrites JSON records; this pipeline reads avro "
                         "(redrive without --fix, e.g. after registering a schema version)")
    job = Redrive(targets, fix=load_fix(args.fix) if args.fix else None, reason=args.reason,
                  force=args.force, kafka_bootstrap=args.kafka_bootstrap)
    report = run_redrive(job, queue, dry_run=args.dry_run, limit=args.limit)
    render_redrive(report, job, args.dry_run)
    print(json.dumps({"redriven": len(report.redriven), "kept": len(report.kept),
                      "refused": len(report.refused), "dry_run": args.dry_run}))
    return 1 if report.kept or report.refused else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tidegate_dev.ops.common import add_location_args

    commands = parser.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="reasons, counted (nothing is consumed)")
    add_location_args(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    show = commands.add_parser("show", help="messages with source coordinates and data")
    add_location_args(show)
    show.add_argument("--reason", help="only messages dead-lettered for this reason")
    show.add_argument("--limit", type=int, default=20, help="at most N messages (default 20)")
    show.add_argument("--json", action="store_true", help="one JSON object a message")
    again = commands.add_parser(
        "redrive", help="put messages back on the source (optionally repaired), then delete")
    add_location_args(again)
    again.add_argument("--reason", help="only messages dead-lettered for this reason")
    again.add_argument("--limit", type=int, help="at most N messages")
    again.add_argument("--fix", metavar="package.module:function",
                       help="repair each record: gets a dict (JSON object) or bytes, returns "
                            "a dict, bytes, or None when it cannot repair it")
    again.add_argument("--dry-run", action="store_true",
                       help="say what would be redriven and kept; put and delete nothing")
    again.add_argument("--to-pipeline", metavar="NAME",
                       help="with --force: redrive other pipelines' dead letters into NAME "
                            "(this file's pipeline)")
    again.add_argument("--force", action="store_true",
                       help="allow messages dead-lettered by another pipeline")
    again.add_argument("--kafka-bootstrap", metavar="HOST:PORT",
                       help="msk pipelines: the brokers of the source topic")
