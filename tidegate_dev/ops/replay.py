"""`tidegate replay`: rebuild a pipeline's state as a new version from the source log, and
switch to it once it has caught up — locally over an events file, or on a deployed stack.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from rich.table import Table

from tidegate import topology
from tidegate.spec import load_pipeline_file
from tidegate.watermark import describe
from tidegate_dev.cli.console import err, out, progress_bar
from tidegate_dev.local.esm import StartingPosition
from tidegate_dev.ops.cutover import PartitionProgress, caught_up, short_position


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="pipeline file (YAML)")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from", dest="start", choices=["trim-horizon"], default="trim-horizon",
                       help="start at the oldest record of every shard (the default)")
    start.add_argument("--at-timestamp", metavar="ISO",
                       help="start at the first record that arrived at or after this time")
    start.add_argument("--positions", metavar="SHARD=SEQ,...",
                       help="start at these sequence numbers (local only; other shards at "
                            "the oldest record)")
    parser.add_argument("--version", type=int, help="the new state version (default: next)")
    parser.add_argument("--switch", action="store_true",
                        help="make the new version active once it has caught up")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    local = parser.add_argument_group("local (one process: the live run, then the replay)")
    local.add_argument("--events", help="the log: events, one JSON object a line")
    local.add_argument("--results", help="write the results published to the sink (JSONL)")
    local.add_argument("--shards", type=int, default=1)
    local.add_argument("--batch-size", type=int, default=100)
    local.add_argument("--endpoint-url", help="an AWS-compatible endpoint instead of moto")
    local.add_argument("--chaos", type=int, metavar="SEED",
                       help="inject faults reproducibly, as `local run --chaos` does")
    deployed = parser.add_argument_group("deployed (a stack built with -c replayVersion=N)")
    deployed.add_argument("--deployed", action="store_true",
                          help="drive the replay of a deployed stack through boto3")
    deployed.add_argument("--stack", help="the stack: resource names from its outputs")
    deployed.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    deployed.add_argument("--wait", type=float, default=600.0,
                          help="seconds to wait for mappings and the last catch-up (600)")


def parse_start(args: argparse.Namespace) -> StartingPosition:
    if args.at_timestamp:
        text = args.at_timestamp.replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise SystemExit(f"error: --at-timestamp {args.at_timestamp!r}: not ISO-8601") from None
        if when.tzinfo is None:
            raise SystemExit(f"error: --at-timestamp {args.at_timestamp!r}: give an offset "
                             "(e.g. Z); a naive time is ambiguous")
        return StartingPosition("AT_TIMESTAMP", timestamp=when)
    if args.positions:
        positions: dict[str, str] = {}
        for part in args.positions.split(","):
            shard, _, seq = part.strip().partition("=")
            if not shard or not seq.isdigit():
                raise SystemExit(f"error: --positions: {part!r} is not SHARD=SEQUENCE_NUMBER")
            positions[shard] = seq
        return StartingPosition("AT_SEQUENCE_NUMBER", sequence_numbers=positions)
    return StartingPosition()


def replay(args: argparse.Namespace) -> int:
    pipeline = load_pipeline_file(args.pipeline)
    start = parse_start(args)
    if args.deployed:
        return _deployed(args, pipeline, start)
    if not args.events:
        raise SystemExit("error: a local replay needs --events (the log to write and replay); "
                         "for a deployed stack add --deployed")
    if args.shards < 1 or args.batch_size < 1:
        raise SystemExit("error: --shards and --batch-size must be at least 1")
    from tidegate_dev.cli.local_run import write_jsonl
    from tidegate_dev.local.replay import ReplayError, replay_local
    from tidegate_dev.local.runner import read_event_lines

    lines = read_event_lines(args.events)
    try:
        with progress_bar("replaying", enabled=not args.json) as bar:
            output = replay_local(
                pipeline, lines, start, version=args.version, switch=args.switch,
                shards=args.shards, batch_size=args.batch_size,
                endpoint_url=args.endpoint_url, progress_cb=bar, chaos_seed=args.chaos,
            )
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.results:
        write_jsonl(args.results, output.published)
    summary = {
        "versions": output.rows(),
        "caught_up": caught_up(output.partitions),
        "switched": output.switched,
        "handover_watermark": output.handover_watermark,
        "expired_items": output.expired_items,
    }
    if output.faults is not None:
        summary["faults"] = output.faults
    if not args.json:
        out.print(versions_table(output.rows()))
        out.print(partitions_table(output.partitions))
        if output.switched:
            out.print(f"active version {output.live.version} -> {output.replay.version} at "
                      f"watermark {describe(output.handover_watermark or 0)}; version "
                      f"{output.live.version}'s state expires with the state retention "
                      f"({output.expired_items} items given a TTL)")
    print(json.dumps(summary))
    return 0


def versions_table(rows: list[dict[str, Any]]) -> Table:
    """One column a version, so the table stays narrow."""
    table = Table(title="state versions")
    table.add_column("")
    for r in rows:
        table.add_column(f"v{r['version']} {r['role']}", justify="right")
    lines = [("events read", "records"), ("aggregated", "aggregated"), ("late", "late"),
             ("dead-lettered", "dead_lettered"), ("windows", "windows"),
             ("published", "published")]
    for label, name in lines:
        table.add_row(label, *(f"{r[name]:,}" for r in rows))
    table.add_row("time", *(f"{r['seconds']:.1f} s" for r in rows))
    table.add_row("caught up", *(
        "" if r["caught_up"] is None else ("yes" if r["caught_up"] else "NO") for r in rows
    ))
    return table


def partitions_table(rows: list[PartitionProgress]) -> Table:
    table = Table(title="read positions")
    for name in ("partition", "live", "replay", "caught up"):
        table.add_column(name)
    for row in rows:
        table.add_row(row.partition, short_position(row.live), short_position(row.replay),
                      ("yes (at the tip)" if row.at_tip else "yes") if row.caught_up else "NO")
    return table


def _deployed(args: argparse.Namespace, pipeline: Any, start: StartingPosition) -> int:
    from tidegate_dev.ops.common import aws_endpoint, stack_outputs
    from tidegate_dev.ops.deployed_replay import CutoverError, DeployedReplay

    if start.kind == "AT_SEQUENCE_NUMBER" or args.at_timestamp:
        raise SystemExit("error: a deployed replay starts where its mapping was deployed to "
                         "start (-c replayFrom); --at-timestamp/--positions are for local runs")
    if not args.stack:
        raise SystemExit("error: --deployed needs --stack (its outputs name the functions)")
    with aws_endpoint(args.endpoint_url, args.region):
        outputs = stack_outputs(args.stack)
        if "ReplayIngestFunctionName" not in outputs:
            raise SystemExit(f"error: stack {args.stack} has no replay: deploy it with "
                             "-c replayVersion=N first")
        version = int(outputs["ReplayVersion"])
        if args.version is not None and args.version != version:
            raise SystemExit(f"error: stack {args.stack} replays version {version}, "
                             f"not {args.version}")
        driver = DeployedReplay(
            pipeline=pipeline.name, table=outputs["StateTableName"],
            stream=outputs["SourceStreamArn"], live_ingest=outputs["IngestFunctionName"],
            live_closer=outputs["CloserFunctionName"],
            replay_ingest=outputs["ReplayIngestFunctionName"], replay_version=version,
            live_version=pipeline.state_version, wait_s=args.wait,
            stack=args.stack, version_parameter=outputs.get("LiveStateVersionParameter"),
            retention_s=topology.DEFAULT_RETENTION_S, log=lambda m: err.print(m),
        )
        rows = driver.progress()
        if not args.json:
            out.print(partitions_table(rows))
        done = caught_up(rows)
        summary: dict[str, Any] = {"replay_version": version, "caught_up": done,
                                   "switched": False}
        if args.switch:
            try:
                summary["handover_watermark"] = driver.cut_over()
                summary["switched"] = True
            except CutoverError as exc:
                print(f"error: {exc}", file=sys.stderr)
                print(json.dumps(summary))
                return 1
        print(json.dumps(summary))
        return 0 if done or summary["switched"] else 1
