"""`tidegate` entry point: argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _local_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="pipeline file (YAML)")
    parser.add_argument("--events", required=True, help="events, one JSON object a line")
    parser.add_argument("--results", required=True, help="where to write published results")
    parser.add_argument("--summary", help="where to write the summary JSON")
    parser.add_argument(
        "--shards", type=int, help="source shards (default: the file's source.shards, else 1)"
    )
    parser.add_argument("--batch-size", type=int, default=100, help="records per batch")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint instead of moto")
    parser.add_argument(
        "--kafka-bootstrap", metavar="HOST:PORT",
        help="msk pipelines: a Kafka broker instead of the in-process mock cluster",
    )
    parser.add_argument(
        "--no-flush", action="store_true", help="do not close the remaining windows at the end"
    )
    parser.add_argument(
        "--chaos", type=int, metavar="SEED",
        help="inject faults reproducibly (crashes, throttling, duplicates, racing closers)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--follow", action="store_true",
        help="after the input, keep reading the source (e.g. `tidegate dlq redrive`) until "
             "Ctrl-C or SIGTERM; resources keep the names the ops commands look for",
    )
    parser.add_argument(
        "--timeline", metavar="PNG",
        help="draw the run: events, watermark and windows over arrival order",
    )
    parser.add_argument(
        "--dead-letters", metavar="FILE",
        help="write the dead-lettered records, one JSON object a line (reason, detail, "
             "source coordinates, payload)",
    )
    parser.add_argument(
        "--late", metavar="FILE", help="write the late records, as --dead-letters does"
    )


def build_parser() -> argparse.ArgumentParser:
    from tidegate import __version__

    parser = argparse.ArgumentParser(
        prog="tidegate", description="Event-time stream analytics on AWS serverless."
    )
    parser.add_argument("--version", action="version", version=f"tidegate {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="run pipelines on one machine")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    _local_run_args(local_commands.add_parser("run", help="run a pipeline over a JSONL file"))

    demo = commands.add_parser("demo", help="the click/purchase demo, end to end, on moto")
    demo.add_argument("--events", type=int, default=2_000, help="how many events (default 2000)")
    demo.add_argument("--users", type=int, default=8, help="distinct users (default 8)")
    demo.add_argument("--shards", type=int, default=2)
    demo.add_argument("--batch-size", type=int, default=100)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--pipeline", help="pipeline file (default: pipelines/clickstream.yaml)")
    demo.add_argument("--chaos", type=int, metavar="SEED", help="inject faults (see local run)")
    demo.add_argument("--max-step-ms", type=int, default=400,
                      help="largest event-time step between generated events (default 400)")
    demo.add_argument("--timeline", metavar="PNG", help="draw the run's timeline to PNG")

    validate = commands.add_parser("validate", help="check pipeline files and exit")
    validate.add_argument("pipelines", nargs="+")

    schema_json = commands.add_parser(
        "schema-json", help="the pipeline file's JSON Schema, for editor completion")
    schema_json.add_argument("-o", "--output", metavar="FILE",
                             help="write it here (default: stdout)")

    from tidegate_dev.ops import dlq, produce, replay, smoke, status, tail

    produce.add_arguments(commands.add_parser(
        "produce", help="send generated (or file) events to a pipeline's source stream"))
    status.add_arguments(commands.add_parser(
        "status", help="watermarks, open windows, DLQ and results; non-zero if it needs you"))
    tail.add_arguments(commands.add_parser("tail", help="follow the sink, print results"))
    replay.add_arguments(commands.add_parser(
        "replay", help="rebuild state as a new version from the log; switch when caught up"))
    dlq.add_arguments(commands.add_parser(
        "dlq", help="dead letters: list reasons, show messages, redrive (optionally fixed)"))
    smoke.add_arguments(commands.add_parser(
        "smoke", help="after cdk deploy: tagged test events through the stack, then clean up"))

    from tidegate_dev.cli.schemas import add_arguments as schemas_arguments

    schemas_arguments(commands.add_parser(
        "schemas", help="schema versions: compatibility check, pydantic -> JSON Schema"))

    from tidegate_dev.bench.cli import add_arguments as bench_arguments

    bench_arguments(commands.add_parser(
        "bench", help="throughput, write cost, cold start, close latency and $ against targets"))

    from tidegate_dev.plan.cli import add_arguments as plan_arguments

    plan_arguments(commands.add_parser(
        "plan", help="capacity and $/hour for a rate and key count, from bench's measurements"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tidegate_dev.cli import errors

    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:
        # Commands stop with SystemExit("error: ...") where they find a problem themselves.
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
        return 1
    except Exception as exc:
        if errors.debugging():
            raise
        line, code = errors.report(exc, args)
        print(line, file=sys.stderr)
        return code


def _dispatch(args: argparse.Namespace) -> int:
    from tidegate.spec import PipelineError

    try:
        if args.command == "local":
            from tidegate_dev.cli.local_run import local_run

            return local_run(args)
        if args.command == "demo":
            from tidegate_dev.cli.demo import demo

            return demo(args)
        if args.command == "validate":
            from tidegate_dev.cli.validate import validate

            return validate(args)
        if args.command == "schema-json":
            from tidegate_dev.reference.jsonschema import schema_json

            if args.output:
                with open(args.output, "w", encoding="utf-8") as handle:
                    handle.write(schema_json())
            else:
                sys.stdout.write(schema_json())
            return 0
        if args.command == "bench":
            from tidegate_dev.bench.report import bench

            return bench(args)
        if args.command == "schemas":
            from tidegate_dev.cli.schemas import schemas

            return schemas(args)
        if args.command == "plan":
            from tidegate_dev.plan.cli import plan

            return plan(args)
        if args.command in ("produce", "status", "tail", "dlq", "replay", "smoke"):
            from importlib import import_module

            module = import_module(f"tidegate_dev.ops.{args.command}")
            return int(getattr(module, args.command)(args))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
