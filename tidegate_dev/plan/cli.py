"""`tidegate plan`: arguments, and the plan as a table (or one JSON object)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tidegate_dev.bench import cost
from tidegate_dev.plan.model import Assumptions, Workload

DEFAULT_BATCH = Workload.__dataclass_fields__["batch_size"].default


def _positive(kind: type[int] | type[float], name: str) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a{'n integer' if kind is int else ' number'}, not {text!r}"
            ) from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{name} must be positive, not {text!r}")
        return value

    return parse


def _exponent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--zipf must be a number, not {text!r}") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(
            f"--zipf must be >= 0 (0 is uniform) and at most 10, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", help="pipeline file (YAML)")
    parser.add_argument("--events-per-second", required=True,
                        type=_positive(float, "--events-per-second"), help="sustained rate")
    parser.add_argument("--keys", required=True, type=_positive(int, "--keys"),
                        help="distinct aggregation keys")
    parser.add_argument("--avg-event-bytes", type=_positive(float, "--avg-event-bytes"),
                        help="average record size (default: the bench workload's)")
    parser.add_argument("--batch-size", type=_positive(int, "--batch-size"),
                        default=DEFAULT_BATCH,
                        help=f"ingest batch size (default {DEFAULT_BATCH}, as deployed)")
    parser.add_argument("--zipf", type=_exponent, default=1.1,
                        help="key skew: Zipf exponent s (default 1.1; 0 is uniform)")
    parser.add_argument("--partitioning", choices=("auto", "key", "random"), default="auto",
                        help="source partition key: the aggregation key, random, or auto "
                             "(default: by key when one shard can carry the hottest key)")
    parser.add_argument("--ingest-concurrency", type=_positive(int, "--ingest-concurrency"),
                        default=Assumptions.ingest_concurrency,
                        help="group writes in flight per ingest invocation "
                             f"(default {Assumptions.ingest_concurrency}: "
                             "TIDEGATE_WRITE_CONCURRENCY in Lambda)")
    parser.add_argument("--closer-concurrency", type=_positive(int, "--closer-concurrency"),
                        default=Assumptions.closer_concurrency,
                        help="windows of different keys in flight per closer worker "
                             f"(default {Assumptions.closer_concurrency}: "
                             "TIDEGATE_WRITE_CONCURRENCY in Lambda)")
    parser.add_argument("--close-within", type=_positive(float, "--close-within"),
                        default=Assumptions.close_within_s, metavar="SECONDS",
                        help="close a period's windows within this (default 10)")
    parser.add_argument("--ddb-latency-ms", type=_positive(float, "--ddb-latency-ms"),
                        default=Assumptions.ddb_latency_ms,
                        help="one DynamoDB round trip (default 5)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--calibration", type=Path, metavar="FILE",
                        help="measured figures to use (default: the committed calibration)")
    source.add_argument("--measure", action="store_true",
                        help="measure on this machine first (about a minute or two)")
    parser.add_argument("--save-calibration", type=Path, metavar="FILE",
                        help="with --measure: write the measured calibration here")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def plan(args: argparse.Namespace) -> int:
    from tidegate.spec import load_pipeline_file
    from tidegate_dev.plan import calibration as calib
    from tidegate_dev.plan.model import Model
    from tidegate_dev.plan.shape import shape_of

    if args.save_calibration and not args.measure:
        print("error: --save-calibration needs --measure", file=sys.stderr)
        return 2
    pipeline = load_pipeline_file(args.pipeline)
    workload = Workload(
        events_per_second=args.events_per_second,
        keys=args.keys,
        event_bytes=args.avg_event_bytes or 1.0,  # the calibration's, unless given
        batch_size=args.batch_size,
        zipf_s=args.zipf,
        partitioning=args.partitioning,
    )
    problems = workload.problems()  # before a measurement that takes minutes
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.measure:
            cal = calib.measure("tidegate plan --measure", calib.MEASURE_SIZES)
            if args.save_calibration:
                cal.save(args.save_calibration)
        else:
            cal = calib.load(args.calibration or calib.DEFAULT_PATH)
    except calib.CalibrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.avg_event_bytes:
        workload = replace(workload, event_bytes=cal.event_bytes)
    assumptions = Assumptions(close_within_s=args.close_within,
                              ddb_latency_ms=args.ddb_latency_ms,
                              ingest_concurrency=args.ingest_concurrency,
                              closer_concurrency=args.closer_concurrency)
    shape = shape_of(pipeline, cal)
    result = Model(workload, shape, cal.windows[shape.window].calibrated(), assumptions).plan()
    report = {
        **result.as_dict(),
        "calibration": {
            "measured_on": cal.measured_on,
            "machine": cal.machine,
            "command": cal.command,
            "source": "measured now" if args.measure else str(
                args.calibration or calib.DEFAULT_PATH.name),
            "window": asdict(cal.windows[shape.window]),
        },
        "prices": {"date": cost.PRICES_DATE, "region": "us-east-1", "usd": cost.PRICES},
    }
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        render(report)
    return 0


# -- rendering -----------------------------------------------------------------------------
def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if digits == 0 and 0 < abs(value) < 10 and value != int(value):
        digits = 1
    return f"{value:,.{digits}f}"


def render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from tidegate_dev.cli.console import out

    w, src, ing = report["workload"], report["source"], report["ingest"]
    ddb, cl, usd = report["dynamodb"], report["closer"], report["usd_per_hour"]
    shape = report["pipeline"]
    table = Table(title=f"capacity plan: {shape['name']} ({shape['window']}), "
                        f"{_n(w['events_per_second'])} events/s, {_n(w['keys'])} keys, "
                        f"Zipf s={w['zipf_s']:g}")
    table.add_column("component")
    table.add_column("figure", justify="right")
    table.add_column("what it is")

    def row(component: str, value: str, note: str = "") -> None:
        table.add_row(component, value, note)

    if src["kind"] == "kinesis":
        row("Kinesis shards", _n(src["shards"]),
            f"write limit {_n(src['write_limit_shards'])}, read limit "
            f"{_n(src['read_limit_shards'])}, the ingest keeps up at {_n(src['shards'])}; "
            f"{src['partitioning']} partitioning")
        row("  events/s per shard", _n(src["events_per_shard_per_s"]),
            f"hottest shard {_n(src['hottest_shard_events_per_s'])}")
    else:
        row("MSK partitions", _n(src["partitions"]), f"{src['partitioning']} partitioning")
        row("MSK brokers", _n(src["brokers"]),
            f"{src['broker_type']}, {_n(src['ingress_mb_per_s'], 2)} MB/s in")
        row("  Lambda event pollers", _n(src["event_pollers"]),
            "provisioned mode: 5 MB/s or 5 concurrent invocations each (not priced)")
    row("  hottest key", f"{_n(src['hottest_key_events_per_s'])}/s",
        f"{src['hottest_key_share']:.2%} of events")
    row("Lambda ingest concurrency", _n(ing["concurrency"]),
        f"ParallelizationFactor {ing['parallelization_factor']}")
    row("  events per invocation", _n(ing["events_per_invocation"]),
        f"{_n(ing['groups_per_invocation'])} conditional writes each")
    row("  duration", f"{_n(ing['duration_ms'])} ms",
        f"CPU {_n(ing['cpu_ms'])} ms + DynamoDB {_n(ing['dynamodb_wait_ms'])} ms at "
        f"{ing['memory_mb']} MB; busy {ing['utilisation']:.0%}")
    row("  invocations/s", _n(ing["invocations_per_s"]),
        f"hottest shard busy {ing['hottest_shard_utilisation']:.0%}")
    row("DynamoDB WRU/s", _n(ddb["wru_per_s"]["total"]),
        ", ".join(f"{k} {_n(v)}" for k, v in ddb["wru_per_s"].items() if k != "total"))
    row("DynamoDB RRU/s", _n(ddb["rru_per_s"]["total"]),
        ", ".join(f"{k} {_n(v)}" for k, v in ddb["rru_per_s"].items() if k != "total"))
    row("  partitions (throughput)", _n(ddb["partitions"]),
        f"{_n(ddb['wru_per_partition'])} WRU/s, {_n(ddb['rru_per_partition'])} RRU/s each "
        "(limits 1,000 / 3,000)")
    row("  hottest partition WRU/s", _n(ddb["hottest_partition_wru_per_s"]),
        "the most of: the hottest item, the watermark items, an average partition")
    row("  hottest item WRU/s", _n(ddb["hottest_item_wru_per_s"]),
        f"{_n(ddb['hottest_item_writes_per_s'])} writes/s of "
        f"{_n(ddb['hottest_pane_item_bytes'])} B; {_n(ddb['keys_over_item_limit'])} keys "
        "over 1,000")
    row("  pane item, one mark", f"{_n(ddb['pane_item_bytes'])} B",
        f"{_n(ddb['wru_per_ingest_write'], 2)} WRU per ingest write")
    row("Closer windows per period", _n(cl["windows_per_period"]),
        f"every {_n(cl['period_s'])} s; at most {_n(cl['windows_per_window_size_upper_bound'])}"
        " per window size (every key active)")
    row("  per window", f"{_n(cl['seconds_per_window'] * 1000, 1)} ms",
        f"{_n(cl['requests_per_window'], 1)} DynamoDB requests in sequence, "
        f"{report['assumptions']['closer_concurrency']} windows of different keys at a time")
    row("  index partitions (workers)", _n(cl["index_partitions_recommended"]),
        f"{_n(cl['workers_needed'])} needed to close within the target; "
        f"{cl['index_partitions_configured']} configured")
    row("  time to close a window size", f"{_n(cl['seconds_to_close_window_size'], 1)} s",
        f"{_n(cl['windows_per_window_size'])} windows; "
        f"{'keeps up' if cl['keeps_up'] else '[red]falls behind[/]'}; "
        f"{_n(cl['seconds_to_close_window_size_configured'], 1)} s with the configured "
        f"{cl['index_partitions_configured']}")
    for name, value in usd.items():
        if name != "total":
            row(f"$/hour {name.replace('_', ' ')}", f"{value:,.3f}")
    row("$/hour total", f"[bold]{usd['total']:,.2f}[/]",
        f"${usd['total'] * 730:,.0f} a month")
    out.print(table)
    for flag in report["flags"]:
        out.print(f"[yellow]![/] {flag}")
    a = report["assumptions"]
    cal = report["calibration"]
    out.print(
        f"[dim]assumptions: {_n(w['event_bytes'])} B events, batch up to {w['batch_size']:,} "
        f"in a {a['batching_window_s']:g} s window, ingest {a['ingest_memory_mb']} MB / "
        f"closer {a['closer_memory_mb']} MB, {a['ddb_latency_ms']:g} ms a DynamoDB round trip "
        f"({a['ingest_concurrency']} in flight per ingest invocation, "
        f"{a['closer_concurrency']} windows of different keys in flight per closer worker, "
        "TIDEGATE_WRITE_CONCURRENCY as deployed), a shard busy "
        f"at most {a['max_utilisation']:.0%}, windows closed within "
        f"{a['close_within_s']:g} s, results batched to the sink; MSK: "
        f"{a['msk_broker_ingress_mb_s']:g} MB/s in per broker (a guess), replication "
        f"{a['msk_replication']}, {a['msk_retention_hours']:g} h retention, event pollers "
        f"not priced. Storage, "
        f"CloudWatch and data transfer not counted. Calibration ({cal['source']}, measured "
        f"{cal['measured_on']} on {cal['machine']}): ingest "
        f"{cal['window']['cpu_s_per_event'] * 1e6:.0f} µs CPU an event, "
        f"{cal['window']['closer_requests_per_window']:.1f} DynamoDB requests a closed window, "
        f"{_n(ddb['pane_item_bytes'])} B panes; prices us-east-1, "
        f"{report['prices']['date']}.[/]"
    )
