"""`tidegate status`: one screen on a running pipeline, and a gate for deploys.

Everything is read without changing anything: queue messages are peeked with a zero
visibility timeout (so none is consumed or delayed) and the state table is only queried.
The exit code is 1 when something needs a human: a window stuck in CLOSING or PENDING for
longer than `--stuck-after`, a non-empty dead-letter queue, or a stalled watermark.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tidegate.aws import client
from tidegate.closer import CLOSING, EMITTED, PENDING, PUBLISHED
from tidegate.durations import parse_duration_ms
from tidegate.schemas.eventtime import format_ms
from tidegate.spec import Pipeline, SessionWindow, load_pipeline_file
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.topology import OPEN_INDEX, OPEN_PK, OPEN_SK
from tidegate.watermark import MAX_WATERMARK, MIN_WATERMARK, WatermarkStore
from tidegate_dev.ops.common import Targets

_PEEK_ROUNDS = 5  # receive calls per queue: enough for the top reasons, cheap on a big DLQ


def _time(ms: int | None) -> str | None:
    if ms is None or ms <= MIN_WATERMARK:
        return None if ms is None else "-inf"
    if ms >= MAX_WATERMARK:
        return "+inf"
    return format_ms(ms)


def partitions_of(stream: str) -> list[str]:
    """The source's shards, so a shard that never produced shows up too (best effort)."""
    try:
        shards = client("kinesis").list_shards(StreamName=stream)["Shards"]
    except Exception:  # a deployed stream may not be readable with these credentials
        return []
    return sorted(s["ShardId"] for s in shards if "EndingSequenceNumber" not in
                  s.get("SequenceNumberRange", {}))


def watermark_section(targets: Targets, now_ms: int) -> dict[str, Any]:
    pipeline = targets.pipeline
    store = DynamoStore(targets.table)
    state = WatermarkStore(store, pipeline.name, pipeline.state_version).read()
    spec = pipeline.watermark
    known = partitions_of(targets.source_stream) if pipeline.source.type == "kinesis" else []
    rows = []
    for name in sorted(set(state.partitions) | set(known)):
        mark = state.partitions.get(name)
        if mark is None:
            rows.append({"partition": name, "watermark": None, "max_event_time": None,
                         "last_seen": None, "idle": None, "records_seen": False})
            continue
        rows.append({
            "partition": name,
            "watermark": mark.watermark,
            "max_event_time": mark.max_event_ms,
            "last_seen": mark.last_seen_ms,
            "idle": now_ms - mark.last_seen_ms >= spec.idle_timeout,
            "records_seen": True,
        })
    computed = state.pipeline_watermark(now_ms, spec.idle_timeout, known or None,
                                        spec.advance_when_idle)
    stored = state.floor
    lag = None if stored <= MIN_WATERMARK or stored >= MAX_WATERMARK else now_ms - stored
    return {
        "partitions": rows,
        # What the closer last stored (windows close against this) and what it would
        # store if it ran now.
        "pipeline_watermark": stored,
        "pipeline_watermark_now": computed,
        "lag_ms": lag,
        "flushed": stored >= MAX_WATERMARK,
    }


def _close_at(pipeline: Pipeline, sk: str) -> int:
    """A result item's close time from its sort key (`W#start` or `W#start#end[#vN]`)."""
    parts = sk.split("#")
    if isinstance(pipeline.window, SessionWindow):
        return keys.decode_time(parts[2]) + pipeline.allowed_lateness
    return keys.decode_time(parts[1]) + pipeline.window.size + pipeline.allowed_lateness


def windows_section(targets: Targets, now_ms: int, stuck_after_ms: int) -> dict[str, Any]:
    pipeline = targets.pipeline
    ddb = client("dynamodb")
    open_count = 0
    oldest: int | None = None
    for index_pk in keys.open_index_partitions(pipeline.name, pipeline.state_version,
                                               pipeline.index_shards):
        kwargs: dict[str, Any] = {
            "TableName": targets.table, "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "#p = :p",
            "ExpressionAttributeNames": {"#p": OPEN_PK, "#s": OPEN_SK},
            "ExpressionAttributeValues": {":p": {"S": index_pk}},
            "ProjectionExpression": "#s",
        }
        first_page = True
        while True:
            page = ddb.query(**kwargs)
            items = page.get("Items", [])
            open_count += len(items)
            # Sorted by close_at: the first item of the partition is its oldest.
            if first_page and items:
                at = int(items[0][OPEN_SK]["N"])
                oldest = at if oldest is None else min(oldest, at)
            first_page = False
            if not page.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # Result items are not all in the index (a pane window's is not), so they are counted
    # with a filtered scan of this pipeline's aggregate items.
    prefix = keys.key_pk(pipeline.name, pipeline.state_version, "")
    states: Counter[str] = Counter()
    published = 0
    stuck: list[dict[str, Any]] = []
    sessions = isinstance(pipeline.window, SessionWindow)
    kwargs = {
        "TableName": targets.table,
        "FilterExpression": "begins_with(PK, :pk) AND begins_with(SK, :w) "
                            "AND attribute_exists(#st)",
        "ExpressionAttributeNames": {"#st": "state", "#v": "version"},
        "ExpressionAttributeValues": {":pk": {"S": prefix}, ":w": {"S": "W#"}},
        "ProjectionExpression": "PK, SK, #st, #v",
    }
    while True:
        page = ddb.scan(**kwargs)
        for item in page.get("Items", []):
            state = item["state"]["S"]
            version = int(item.get("version", {}).get("N", "1"))
            states[state] += 1
            if sessions:
                # Each session version is an item of its own.
                published += 1 if state in (EMITTED, PUBLISHED) else 0
            else:
                # A pane window's item holds its latest version; the earlier ones were out.
                published += version if state in (EMITTED, PUBLISHED) else version - 1
            if state in (CLOSING, PENDING):
                close_at = _close_at(pipeline, item["SK"]["S"])
                if now_ms - close_at >= stuck_after_ms:
                    stuck.append({"key": keys.key_of_pk(item["PK"]["S"]),
                                  "sk": item["SK"]["S"], "state": state,
                                  "close_at": close_at})
        if not page.get("LastEvaluatedKey"):
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    stuck.sort(key=lambda s: s["close_at"])
    return {
        "open": open_count,
        "oldest_close_at": oldest,
        "closing": states[CLOSING],
        "pending": states[PENDING],
        "emitted": states[EMITTED],
        "published_versions": states[PUBLISHED],
        "stuck": len(stuck),
        "stuck_examples": stuck[:5],
        "results_published": published,
    }


def queue_section(url: str | None) -> dict[str, Any]:
    """Depth and the top reasons, from messages peeked with VisibilityTimeout=0."""
    if url is None:
        return {"url": None, "depth": None, "in_flight": None, "top_reasons": []}
    sqs = client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    depth = int(attrs.get("ApproximateNumberOfMessages", 0))
    reasons: Counter[str] = Counter()
    seen: set[str] = set()
    for _ in range(_PEEK_ROUNDS if depth else 0):
        page = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0,
                                   WaitTimeSeconds=0)
        # Each receive returns some of the messages (a sample); repeats are skipped.
        fresh = [m for m in page.get("Messages", []) if m["MessageId"] not in seen]
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                reasons[str(json.loads(message["Body"]).get("reason", "?"))] += 1
            except ValueError:
                reasons["(not JSON)"] += 1
    return {
        "url": url,
        "depth": depth,
        "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        "top_reasons": reasons.most_common(5),
        "peeked": len(seen),
    }


def cloudwatch_section(function: str | None, now_ms: int) -> dict[str, Any] | None:
    """Iterator age and errors of the ingest function over the last 15 minutes. Best
    effort: an endpoint without CloudWatch (or without data) just has nothing to say."""
    if not function:
        return None
    end = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    out: dict[str, Any] = {"function": function}
    try:
        cw = client("cloudwatch")
        for metric, stat in (("IteratorAge", "Maximum"), ("Errors", "Sum")):
            points = cw.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName=metric,
                Dimensions=[{"Name": "FunctionName", "Value": function}],
                StartTime=end - timedelta(minutes=15), EndTime=end, Period=300,
                Statistics=[stat],
            ).get("Datapoints", [])
            values = [p[stat] for p in points]
            if metric == "IteratorAge":
                out["iterator_age_ms"] = max(values) if values else None
            else:
                out["errors"] = int(sum(values)) if values else None
    except Exception:
        return None
    return out


def live_version(
    targets: Targets, chosen: int | None = None
) -> tuple[Targets, dict[str, int | None]]:
    """After a replay's switch the live state version is the table's `ACTIVE` record, not
    the file's `state_version` until the user edits it: report the live one, and say so."""
    from dataclasses import replace

    from tidegate.versions import ActiveVersions

    file_version = targets.pipeline.state_version
    try:
        active = ActiveVersions(DynamoStore(targets.table), targets.pipeline.name).active()
    except Exception:  # no table yet, or not readable: the file's version is all we know
        active = None
    shown = chosen if chosen is not None else file_version if active is None else active
    if shown != file_version:
        pipeline = targets.pipeline.model_copy(update={"state_version": shown})
        targets = replace(targets, pipeline=pipeline)
    return targets, {"file": file_version, "active": active, "shown": shown}


def collect(targets: Targets, *, now_ms: int | None = None, stuck_after_ms: int = 600_000,
            max_lag_ms: int = 900_000, state_version: int | None = None) -> dict[str, Any]:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    targets, versions = live_version(targets, state_version)
    report: dict[str, Any] = {
        "pipeline": targets.pipeline.name,
        "now": now,
        "state_version": versions,
        "resources": {"table": targets.table, "stream": targets.source_stream,
                      "dlq": targets.dlq_url, "late": targets.late_url, "sink": targets.sink},
        "watermark": watermark_section(targets, now),
        "windows": windows_section(targets, now, stuck_after_ms),
        "dlq": queue_section(targets.dlq_url),
        "late": queue_section(targets.late_url),
        "ingest_metrics": cloudwatch_section(targets.ingest_function, now),
    }
    report["problems"] = problems(report, max_lag_ms)
    return report


def problems(report: dict[str, Any], max_lag_ms: int) -> list[str]:
    found: list[str] = []
    windows, wm = report["windows"], report["watermark"]
    versions = report["state_version"]
    if versions["active"] is not None and versions["active"] != versions["file"]:
        found.append(
            f"state version {versions['active']} is live (a replay switched to it) but the "
            f"pipeline file says state_version: {versions['file']}; set it to "
            f"{versions['active']} before the next deploy, or that deploy goes back"
        )
    if windows["stuck"]:
        found.append(f"{windows['stuck']} window(s) stuck in CLOSING/PENDING")
    depth = report["dlq"]["depth"]
    if depth:
        found.append(f"dead-letter queue holds {depth} message(s)")
    if report["dlq"]["url"] is None:
        found.append("dead-letter queue not found")
    # Stalled: windows wait for a watermark that lags now by more than allowed. With all
    # partitions idle the closer moves it by processing time, so only open windows count.
    if max_lag_ms > 0 and windows["open"]:
        lag = wm["lag_ms"]
        if wm["pipeline_watermark"] <= MIN_WATERMARK:
            found.append("watermark stalled: no watermark yet while windows are open")
        elif lag is not None and lag > max_lag_ms:
            found.append(f"watermark stalled: {lag / 1000:.0f} s behind now with "
                         f"{windows['open']} open window(s)")
    return found


def render(report: dict[str, Any]) -> None:
    from rich.table import Table

    from tidegate_dev.cli.console import out

    wm = report["watermark"]
    out.print(f"[bold]{report['pipeline']}[/] at {format_ms(report['now'])}   table "
              f"{report['resources']['table']}   state version "
              f"{report['state_version']['shown']}")
    table = Table(title="source partitions")
    for column in ("partition", "watermark", "max event time", "last record", "idle"):
        table.add_column(column)
    for row in wm["partitions"]:
        if not row["records_seen"]:
            table.add_row(row["partition"], "-", "-", "no records yet", "")
            continue
        ago = (report["now"] - row["last_seen"]) / 1000
        table.add_row(row["partition"], _time(row["watermark"]), _time(row["max_event_time"]),
                      f"{ago:,.0f} s ago", "idle" if row["idle"] else "active")
    out.print(table)
    lag = wm["lag_ms"]
    lag_text = "" if lag is None else f" ({lag / 1000:,.1f} s behind now)"
    out.print(f"pipeline watermark: [bold]{_time(wm['pipeline_watermark'])}[/]{lag_text}; "
              f"if the closer ran now: {_time(wm['pipeline_watermark_now'])}")
    w = report["windows"]
    out.print(f"open windows: {w['open']} (oldest close at {_time(w['oldest_close_at']) or '-'})"
              f"; CLOSING {w['closing']}, PENDING {w['pending']}, stuck {w['stuck']}")
    out.print(f"results published: {w['results_published']}")
    for name in ("dlq", "late"):
        q = report[name]
        label = "dead-letter queue" if name == "dlq" else "late queue"
        if q["url"] is None:
            out.print(f"{label}: [yellow]not found[/]")
            continue
        reasons = ", ".join(f"{r} x{n}" for r, n in q["top_reasons"]) or "-"
        out.print(f"{label}: {q['depth']} message(s); top reasons (peeked): {reasons}")
    metrics = report["ingest_metrics"]
    if metrics:
        age = metrics.get("iterator_age_ms")
        out.print(f"ingest {metrics['function']}: iterator age "
                  f"{'-' if age is None else f'{age:,.0f} ms'}, errors "
                  f"{metrics.get('errors') if metrics.get('errors') is not None else '-'}"
                  " (last 15 min)")
    if report["problems"]:
        for problem in report["problems"]:
            out.print(f"[bold red]needs attention:[/] {problem}")
    else:
        out.print("[green]ok[/]")


def status(args: argparse.Namespace) -> int:
    from tidegate_dev.ops.common import aws_endpoint, resolve

    pipeline = load_pipeline_file(args.pipeline)
    with aws_endpoint(args.endpoint_url, args.region):
        targets = resolve(pipeline, stack=args.stack, table=args.table, stream=args.stream,
                          dlq_url=args.dlq_url, late_url=args.late_url, sink=args.sink,
                          ingest_function=args.ingest_function)
        report = collect(targets, stuck_after_ms=parse_duration_ms(args.stuck_after),
                         max_lag_ms=parse_duration_ms(args.max_lag),
                         state_version=args.state_version)
    if args.json:
        print(json.dumps(report))
    else:
        render(report)
    return 1 if report["problems"] else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tidegate_dev.ops.common import add_location_args

    add_location_args(parser)
    parser.add_argument("--ingest-function", help="ingest Lambda name, for CloudWatch metrics")
    parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    parser.add_argument("--state-version", type=int, metavar="N",
                        help="look at this state version (default: the live one, from the "
                             "table's active-version record, else the file's)")
    parser.add_argument("--stuck-after", default="10m",
                        help="a CLOSING/PENDING window this long past its close time is stuck")
    parser.add_argument("--max-lag", default="15m",
                        help="watermark lag behind now that counts as stalled while windows "
                             "are open (0 switches the check off, e.g. for replays)")
