"""`tidegate smoke --stack NAME`: after a real `cdk deploy`, prove the deployed pipeline
works end to end, and leave nothing behind.

1. Puts `--events` schema-valid events of its own keys (`tidegate-smoke-<run>-<n>`, so
   consumers can tell them apart) on the source stream, at the current time.
2. Keeps the watermark moving: every few seconds one tick event (key
   `tidegate-smoke-<run>-tick`, current time) on each shard, so the test windows close
   even on a quiet stream.
3. Waits until the state table holds every test event (the accounting: all aggregated;
   none late or dead-lettered) and every test window has closed, and, for a Kinesis sink,
   until their results are on the sink (read without consuming anything).
4. Deletes the state items of its keys (unless `--keep`). Results already published stay
   on the sink, recognisable by their keys.

The pipeline comes from the stack itself (the template's `tidegate:pipeline` metadata), or
from a pipeline file given as the first argument. Exit 0 when all of it held, 1 if not,
2 when the stack cannot be smoke-tested (a Kafka source, or keys that are not strings).

The tick events run at the current time: on a pipeline whose events arrive far behind
real time (a backfill), they would move its watermark past those events and make them
late. Smoke-test such a pipeline with `--no-ticks` while its traffic keeps it moving.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tidegate.aws import client
from tidegate.spec import EnumField, InlineSchema, Pipeline, TumblingWindow, parse_pipeline
from tidegate.state import keys
from tidegate_dev.ops.common import aws_endpoint, stack_outputs

PIPELINE_METADATA = "tidegate:pipeline"  # infra/stacks/pipeline_stack.py writes it
TAG = "tidegate-smoke"
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


class SmokeError(RuntimeError):
    """The stack cannot be smoke-tested; the message says why."""


@dataclass
class SmokeReport:
    run: str
    events: int
    aggregated: int = 0
    windows_open: int = 0
    results: int = 0
    result_count: int | None = None  # sum of a count aggregate over the results, if any
    ticks: int = 0
    cleaned: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Smoke:
    pipeline: Pipeline
    outputs: dict[str, str]
    events: int = 20
    timeout_s: float = 600.0
    tick_s: float = 5.0
    ticks: bool = True
    state_version: int | None = None
    sleep: Callable[[float], None] = time.sleep
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    log: Callable[[str], None] = field(default=lambda message: None)

    def __post_init__(self) -> None:
        if self.events < 1:
            raise SmokeError(f"--events: at least 1, not {self.events}")
        check_testable(self.pipeline)
        missing = [k for k in ("SourceStreamName", "StateTableName") if k not in self.outputs]
        if missing:
            raise SmokeError(f"the stack has no {', '.join(missing)} output (a Kafka source "
                             "or not a tidegate stack): nothing to smoke-test")
        self.stream = self.outputs["SourceStreamName"]
        self.table = self.outputs["StateTableName"]
        self.run = uuid.uuid4().hex[:8]
        self.version = self.state_version or self.pipeline.state_version

    # -- events ------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        return f"{TAG}-{self.run}-{name}"

    def event(self, key: str, t_ms: int, i: int) -> dict[str, Any]:
        schema = self.pipeline.schema_
        assert isinstance(schema, InlineSchema)  # check_testable
        out: dict[str, Any] = {}
        for name, kind in schema.fields.items():
            if name == self.pipeline.event_time:
                out[name] = t_ms
            elif name in self.pipeline.key:
                out[name] = key
            elif not schema.is_optional(name):
                out[name] = _value(kind, t_ms, i)
        return out

    def pk(self, key: str) -> str:
        values = [key for _ in self.pipeline.key]
        return keys.key_pk(self.pipeline.name, self.version, _KEY_ENCODER.encode(values))

    def test_keys(self) -> list[str]:
        return [self.key(str(i)) for i in range(min(self.events, 5))]

    def put_events(self, start_ms: int) -> None:
        kinesis = client("kinesis")
        test_keys = self.test_keys()
        records = []
        for i in range(self.events):
            key = test_keys[i % len(test_keys)]
            data = json.dumps(self.event(key, start_ms + i, i)).encode("utf-8")
            records.append({"Data": data, "PartitionKey": key})
        for i in range(0, len(records), 500):
            _put_all(kinesis, self.stream, records[i:i + 500])

    def tick(self) -> int:
        """One current-time event on each open shard (by its hash range): a shard's
        watermark moves only with its own records."""
        kinesis = client("kinesis")
        shards = kinesis.list_shards(StreamName=self.stream)["Shards"]
        now = self.now_ms()
        key = self.key("tick")
        records = [
            {"Data": json.dumps(self.event(key, now, 0)).encode("utf-8"), "PartitionKey": key,
             "ExplicitHashKey": s["HashKeyRange"]["StartingHashKey"]}
            for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        ]
        _put_all(kinesis, self.stream, records)
        return len(records)

    # -- looking -----------------------------------------------------------------------------
    def items(self, key: str) -> list[dict[str, Any]]:
        ddb = client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": self.pk(key)}}, "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            page = ddb.query(**kwargs)
            found += page.get("Items", [])
            if not page.get("LastEvaluatedKey"):
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def state(self) -> tuple[int, int]:
        """(events held in the test keys' state, test windows not closed yet)."""
        aggregated = open_windows = 0
        for key in self.test_keys():
            for item in self.items(key):
                sk = item["SK"]["S"]
                if sk.startswith("P#") or sk == "S#open" or "session" in item:
                    aggregated += int(item.get("n", {}).get("N", "0"))
                if "open_pk" in item or sk == "S#open":
                    open_windows += 1
        return aggregated, open_windows

    def results(self, since_ms: int) -> list[dict[str, Any]]:
        """The test keys' results on a Kinesis sink, read from `since_ms` on."""
        if self.pipeline.sink.type != "kinesis" or not self.outputs.get("SinkTarget"):
            return []
        kinesis = client("kinesis")
        stream = self.outputs["SinkTarget"]
        wanted = set(self.test_keys())
        found = []
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="AT_TIMESTAMP",
                Timestamp=datetime.fromtimestamp(since_ms / 1000, tz=UTC),
            )["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                for record in page.get("Records", []):
                    result = json.loads(record["Data"])
                    if set(map(str, (result.get("key") or {}).values())) & wanted:
                        found.append(result)
                if not page.get("Records") or page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page.get("NextShardIterator")
        return found

    # -- running -----------------------------------------------------------------------------
    def run_check(self) -> SmokeReport:
        report = SmokeReport(self.run, self.events)
        started = time.monotonic()
        start_ms = self.now_ms()
        self.log(f"smoke run {self.run}: {self.events} events on {self.stream}")
        self.put_events(start_ms)
        kinesis_sink = self.pipeline.sink.type == "kinesis" and "SinkTarget" in self.outputs
        while True:
            report.aggregated, report.windows_open = self.state()
            results = self.results(start_ms - 60_000) if kinesis_sink else []
            finals = {(json.dumps(r.get("key"), sort_keys=True), r.get("window_start"))
                      for r in results if r.get("final")}
            report.results = len(finals)
            done = (report.aggregated == self.events and report.windows_open == 0
                    and (not kinesis_sink or report.results >= len(self.test_keys())))
            if done or time.monotonic() - started > self.timeout_s:
                break
            if self.ticks:
                report.ticks += self.tick()
            self.sleep(self.tick_s)
        report.seconds = round(time.monotonic() - started, 1)
        if kinesis_sink:
            report.result_count = _count_sum(self.pipeline, results)
        report.problems = self.judge(report)
        return report

    def judge(self, report: SmokeReport) -> list[str]:
        problems = []
        if report.aggregated != self.events:
            problems.append(
                f"{report.aggregated} of {self.events} test events are in the state table "
                "(the rest are still in flight, late or dead-lettered: `tidegate status`, "
                "`tidegate dlq list`)")
        if report.windows_open:
            problems.append(f"{report.windows_open} test windows are still open (is the "
                            "closer running? its schedule, its errors alarm)")
        if report.result_count is not None and report.result_count != self.events:
            problems.append(f"the published results count {report.result_count} test "
                            f"events, not {self.events}")
        elif self.pipeline.sink.type == "kinesis" and report.results < len(self.test_keys()):
            problems.append(f"{report.results} test results on the sink, expected at least "
                            f"{len(self.test_keys())} (the PublishFailures alarm?)")
        return problems

    def clean_up(self) -> int:
        """Delete every state item of the test and tick keys; returns how many."""
        ddb = client("dynamodb")
        deleted = 0
        for key in [*self.test_keys(), self.key("tick")]:
            for item in self.items(key):
                ddb.delete_item(TableName=self.table, Key={"PK": item["PK"], "SK": item["SK"]})
                deleted += 1
        return deleted


def check_testable(pipeline: Pipeline) -> None:
    if pipeline.source.type != "kinesis":
        raise SmokeError(f"pipeline {pipeline.name!r}: smoke tests Kinesis sources; this one "
                         f"reads {pipeline.source.type} (produce to its topic and use "
                         "`tidegate status` instead)")
    schema = pipeline.schema_
    if not isinstance(schema, InlineSchema) or pipeline.format != "json":
        raise SmokeError(f"pipeline {pipeline.name!r}: smoke writes JSON events from an "
                         "inline schema; this pipeline's schema or format is another")
    not_text = [k for k in pipeline.key if str(schema.fields.get(k, "")).rstrip("?") != "string"]
    if not_text:
        raise SmokeError(f"pipeline {pipeline.name!r}: smoke tags its events by their key, "
                         f"and key fields {', '.join(not_text)} are not strings")


def _value(kind: Any, t_ms: int, i: int) -> Any:
    if isinstance(kind, EnumField):
        return kind.enum[i % len(kind.enum)]
    base = str(kind).rstrip("?")
    return {"integer": i, "number": float(i % 7) + 0.5, "boolean": i % 2 == 0,
            "timestamp": t_ms}.get(base, TAG)


def _count_sum(pipeline: Pipeline, results: list[dict[str, Any]]) -> int | None:
    """Tumbling windows hold each event once: their `count` results add up to the events
    (sliding windows count an event in several windows; sessions may be split by ticks)."""
    names = [n for n, spec in pipeline.aggregates.items() if spec.op == "count"]
    if not names or not isinstance(pipeline.window, TumblingWindow):
        return None
    finals = {(json.dumps(r.get("key"), sort_keys=True), r.get("window_start")): r
              for r in results if r.get("final") and "tick" not in json.dumps(r.get("key"))}
    return sum(int(r["aggregates"][names[0]]) for r in finals.values())


def _put_all(kinesis: Any, stream: str, records: list[dict[str, Any]]) -> None:
    pending = records
    for attempt in range(30):
        if not pending:
            return
        out = kinesis.put_records(StreamName=stream, Records=pending)
        pending = [r for r, res in zip(pending, out["Records"], strict=True)
                   if res.get("ErrorCode")]
        if pending:
            time.sleep(min(2.0, 0.1 * 2 ** attempt))
    raise SmokeError(f"{len(pending)} records could not be put on {stream}")


def stack_pipeline(stack: str) -> Pipeline:
    """The pipeline the stack was synthesized from (its template's metadata)."""
    body = client("cloudformation").get_template(StackName=stack)["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    spec = (template.get("Metadata") or {}).get(PIPELINE_METADATA)
    if spec is None:
        raise SmokeError(f"stack {stack} carries no {PIPELINE_METADATA} metadata: give the "
                         "pipeline file as the first argument")
    return parse_pipeline(spec)


def smoke(args: argparse.Namespace) -> int:
    with aws_endpoint(args.endpoint_url, args.region):
        try:
            outputs = stack_outputs(args.stack)
            if args.pipeline:
                from tidegate.spec import load_pipeline_file

                pipeline = load_pipeline_file(Path(args.pipeline))
            else:
                pipeline = stack_pipeline(args.stack)
            version = outputs.get("LiveStateVersionValue")
            check = Smoke(
                pipeline, outputs, events=args.events, timeout_s=args.timeout,
                tick_s=args.tick, ticks=not args.no_ticks,
                state_version=int(version) if version else None,
                log=lambda message: print(message, file=sys.stderr),
            )
        except SmokeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        try:
            report = check.run_check()
        finally:
            if not args.keep:
                cleaned = check.clean_up()
        if not args.keep:
            report.cleaned = cleaned
        for problem in report.problems:
            print(f"problem: {problem}", file=sys.stderr)
        summary = {k: v for k, v in vars(report).items() if k != "problems"}
        print(json.dumps({**summary, "ok": report.ok}))
        return 0 if report.ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pipeline", nargs="?",
                        help="pipeline file (default: the one the stack was deployed from)")
    parser.add_argument("--stack", required=True, help="the deployed stack")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration's)")
    parser.add_argument("--endpoint-url", help="an AWS-compatible endpoint (moto, LocalStack)")
    parser.add_argument("--events", type=int, default=20, help="test events (default 20)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the windows to close (default 600)")
    parser.add_argument("--tick", type=float, default=5.0,
                        help="seconds between tick events and checks (default 5)")
    parser.add_argument("--no-ticks", action="store_true",
                        help="put no tick events: the pipeline's own traffic closes windows")
    parser.add_argument("--keep", action="store_true", help="leave the test state in place")
