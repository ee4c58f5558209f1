"""`tidegate dlq list|show|redrive`: what the dead-letter queue holds, and putting it back.

Reading is peek-and-release: messages are received with a visibility timeout, so each one
is seen once and the listing is complete, then made visible again at once
(ChangeMessageVisibility 0). A receive with a zero visibility timeout would consume nothing
either, but every call returns a sample that may repeat what the last one returned, so
counts by reason would be guesses on a large queue. If the command dies, the messages
reappear by themselves when the timeout ends; the queue has no redrive policy, so the
receive counts this raises change nothing.

Redrive puts the chosen records back on the pipeline's source, optionally repaired by a
user's function, each wrapped with its redrive id (tidegate/redrive.py), and only then
deletes them from the queue. A crash in between leaves them in the queue; run again, the
copies on the stream share an id and the ingest applies one of them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tidegate import redrive
from tidegate.aws import client
from tidegate.rejections import Rejected
from tidegate.schemas.eventtime import format_ms
from tidegate.spec import Pipeline, load_pipeline_file
from tidegate_dev.ops.common import Targets

_HIDE_S = 300  # longer than a listing or a redrive page takes
_MAX_MESSAGES = 100_000  # a listing stops here (a queue this deep is read in parts)
_DATA_PREVIEW = 400
# The redrive's record of what it put back (state table, one item per redriven record).
_LEDGER_PREFIX = "R#"
_LEDGER_SK = "redrive"
_LEDGER_TTL_S = 15 * 24 * 3600  # past SQS's longest retention: no message outlives it
_MAX_LEDGER_BYTES = 350_000  # DynamoDB items hold 400 KB

Fix = Callable[[Any], Any]


@dataclass
class Letter:
    """One dead-letter message as received."""

    message_id: str
    receipt: str
    body: dict[str, Any] | None  # None when the body is not a tidegate dead letter

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "?")) if self.body else "(not a dead letter)"

    @property
    def pipeline(self) -> str | None:
        return self.body.get("pipeline") if self.body else None

    @property
    def source(self) -> dict[str, Any]:
        return dict(self.body.get("source") or {}) if self.body else {}

    @property
    def original(self) -> dict[str, Any]:
        """Where the record first entered the pipeline (before any earlier redrive)."""
        if self.body and isinstance(self.body.get("redrive_of"), dict):
            return dict(self.body["redrive_of"])
        return self.source

    def data(self) -> bytes | None:
        if not self.body or not isinstance(self.body.get("data_b64"), str):
            return None
        try:
            return base64.b64decode(self.body["data_b64"], validate=True)
        except (binascii.Error, ValueError):
            return None


def _letter(message: dict[str, Any]) -> Letter:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    if not isinstance(body, dict) or "reason" not in body:
        body = None
    return Letter(message["MessageId"], message["ReceiptHandle"], body)


class Queue:
    """A dead-letter queue read without consuming it: received messages stay hidden until
    released (or deleted), so every message is seen once."""

    def __init__(self, url: str, confirm_wait_s: int = 1) -> None:
        self.url = url
        self.sqs = client("sqs")
        # Short polling asks only some of SQS's servers: an empty answer is confirmed with
        # a long poll, which asks them all. A local endpoint answers exactly either way.
        self.confirm_wait_s = confirm_wait_s
        self.held: dict[str, Letter] = {}

    def pages(self) -> Iterator[list[Letter]]:
        """Pages of messages not seen before, until the queue has no visible message."""
        while len(self.held) < _MAX_MESSAGES:
            page = self._receive(0)
            if not page and self.confirm_wait_s:
                page = self._receive(self.confirm_wait_s)
            if not page:
                return
            fresh = []
            for message in page:
                letter = _letter(message)
                # Seen before (the hide ran out): keep the newest receipt, list it once.
                known = letter.message_id in self.held
                self.held[letter.message_id] = letter
                if not known:
                    fresh.append(letter)
            if not fresh:
                return
            yield fresh

    def _receive(self, wait_s: int) -> list[dict[str, Any]]:
        out = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=_HIDE_S,
            WaitTimeSeconds=wait_s, AttributeNames=["SentTimestamp"],
        )
        return list(out.get("Messages", []))

    def delete(self, letters: list[Letter]) -> None:
        for chunk in _chunks(letters, 10):
            out = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt} for i, letter in enumerate(chunk)
            ])
            if out.get("Failed"):
                raise RuntimeError(f"deleting from {self.url}: {out['Failed'][:3]}")
            for letter in chunk:
                self.held.pop(letter.message_id, None)

    def release(self) -> None:
        """Make every held message visible again."""
        letters = list(self.held.values())
        for chunk in _chunks(letters, 10):
            self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": letter.receipt, "VisibilityTimeout": 0}
                for i, letter in enumerate(chunk)
            ])
        self.held.clear()


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def read_all(queue: Queue, reason: str | None = None, limit: int | None = None) -> list[Letter]:
    """Every message (of `reason`), up to `limit`; the queue is left as it was."""
    found: list[Letter] = []
    try:
        for page in queue.pages():
            found += [letter for letter in page if reason is None or letter.reason == reason]
            if limit is not None and len(found) >= limit:
                return found[:limit]
        return found
    finally:
        queue.release()


# -- list ------------------------------------------------------------------------------------
def summarize(letters: list[Letter]) -> list[dict[str, Any]]:
    """Per reason: messages, distinct records (delivery is at least once), arrival range."""
    rows: dict[str, dict[str, Any]] = {}
    for letter in letters:
        row = rows.setdefault(letter.reason, {"reason": letter.reason, "messages": 0,
                                              "records": set(), "first_arrival_ms": None,
                                              "last_arrival_ms": None, "example": None})
        row["messages"] += 1
        original = letter.original
        row["records"].add((str(original.get("partition")), str(original.get("position"))))
        arrival = letter.source.get("arrival_ms")
        if isinstance(arrival, int):
            first, last = row["first_arrival_ms"], row["last_arrival_ms"]
            row["first_arrival_ms"] = arrival if first is None else min(first, arrival)
            row["last_arrival_ms"] = arrival if last is None else max(last, arrival)
        if row["example"] is None and letter.body:
            row["example"] = str(letter.body.get("detail", ""))
    out = []
    for row in sorted(rows.values(), key=lambda r: (-r["messages"], r["reason"])):
        out.append({**row, "records": len(row["records"])})
    return out


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


# -- show ------------------------------------------------------------------------------------
def describe(letter: Letter, targets: Targets) -> dict[str, Any]:
    """A message with its coordinates named as its source names them, and its data."""
    source = letter.source
    kafka = targets.pipeline.source.type == "msk"
    partition = str(source.get("partition"))
    where: dict[str, Any] = {}
    if kafka:
        topic, _, number = partition.rpartition("-")
        where = {"topic": topic, "partition": number, "offset": source.get("position")}
    else:
        where = {"stream": targets.source_stream, "shard": partition,
                 "sequence": source.get("position")}
    where["partition_key"] = source.get("partition_key")
    arrival = source.get("arrival_ms")
    where["arrival"] = format_ms(arrival) if isinstance(arrival, int) else None
    data = letter.data()
    shown: dict[str, Any] = {
        "message_id": letter.message_id,
        "pipeline": letter.pipeline,
        "reason": letter.reason,
        "detail": letter.body.get("detail") if letter.body else None,
        "source": where,
        "data": None if data is None else data.decode("utf-8", errors="backslashreplace"),
    }
    if letter.body and letter.body.get("data_truncated"):
        shown["data_truncated"] = True
    if letter.body and letter.body.get("redrive_of"):
        shown["redrive_of"] = letter.body["redrive_of"]
    return shown


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


# -- redrive ---------------------------------------------------------------------------------
def load_fix(spec: str) -> Fix:
    """`package.module:function`, importable from the current directory as with `python -m`."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise SystemExit(f"error: --fix {spec!r}: expected package.module:function")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: --fix {spec!r}: cannot import {module_name}: {exc}") from None
    fix = getattr(module, name, None)
    if not callable(fix):
        raise SystemExit(f"error: --fix {spec!r}: {module_name} has no function {name!r}")
    return fix


def apply_fix(fix: Fix | None, data: bytes) -> bytes | None:
    """The fix gets the record as a dict when it is a JSON object, else as bytes; it returns
    the repaired record (a dict, or bytes) or None when it cannot repair it."""
    if fix is None:
        return data
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        parsed = None
    repaired = fix(parsed if isinstance(parsed, dict) else data)
    if repaired is None:
        return None
    if isinstance(repaired, dict):
        return json.dumps(repaired, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if isinstance(repaired, bytes):
        return repaired
    raise TypeError(f"the fix returned {type(repaired).__name__}; expected dict, bytes or None")


def _decoder(pipeline: Pipeline) -> Any:
    """The ingest's own decoder: a record the redrive would put back is checked first."""
    from tidegate.schemas.compile import compile_schema
    from tidegate.schemas.decode import JsonDecoder

    model = compile_schema(pipeline)
    if pipeline.format == "avro":
        from tidegate.schemas.avro import AvroDecoder, GlueSchemas

        return AvroDecoder(pipeline, model, GlueSchemas.for_pipeline(pipeline, os.environ))
    return JsonDecoder(pipeline, model)


@dataclass
class Plan:
    """What a redrive does with each message it received."""

    put: list[tuple[Letter, bytes]] = field(default_factory=list)  # (letter, record bytes)
    kept: list[tuple[Letter, str]] = field(default_factory=list)  # (letter, why)
    refused: list[Letter] = field(default_factory=list)  # another pipeline's


class Redrive:
    def __init__(self, targets: Targets, *, fix: Fix | None = None, reason: str | None = None,
                 force: bool = False,
                 kafka_bootstrap: str | None = None) -> None:
        self.targets = targets
        self.pipeline = targets.pipeline
        self.fix = fix
        self.reason = reason
        self.force = force
        self.kafka_bootstrap = kafka_bootstrap
        self.decoder = _decoder(self.pipeline)
        self.changed: list[Letter] = []  # redriven before as other bytes: those went again

    def plan(self, letters: list[Letter]) -> Plan:
        plan = Plan()
        for letter in letters:
            if letter.body is None:
                plan.kept.append((letter, "not a tidegate dead letter"))
                continue
            if letter.pipeline != self.pipeline.name and not self.force:
                plan.refused.append(letter)
                continue
            if letter.body.get("data_truncated"):
                plan.kept.append((letter, "its data was truncated in the queue: read the "
                                          "record from the log at its coordinates"))
                continue
            data = letter.data()
            if data is None:
                plan.kept.append((letter, "no readable data_b64"))
                continue
            try:
                record = apply_fix(self.fix, data)
            except Exception as exc:  # the user's code: its failure keeps this one message
                plan.kept.append((letter, f"the fix raised {type(exc).__name__}: {exc}"))
                continue
            if record is None:
                plan.kept.append((letter, "the fix cannot repair it (returned None)"))
                continue
            if len(record) > _MAX_LEDGER_BYTES:
                plan.kept.append((letter, f"{len(record)} bytes: too large to redrive exactly "
                                          "once (the redrive records them in a state item)"))
                continue
            try:
                self.decoder.decode_bytes(record)
            except Rejected as rej:
                plan.kept.append((letter, f"still invalid: {rej.reason}: {rej.detail}"))
                continue
            plan.put.append((letter, record))
        return plan

    @staticmethod
    def redrive_id(letter: Letter) -> str:
        original = letter.original
        return redrive.redrive_id(str(letter.pipeline), str(original.get("partition")),
                                  str(original.get("position")))

    def envelope(self, letter: Letter, record: bytes) -> bytes:
        return redrive.wrap(record, self.redrive_id(letter), letter.original)

    def settle(self, chosen: list[tuple[Letter, bytes]]) -> list[tuple[Letter, bytes]]:
        """The bytes each record goes back as. The first redrive of a record writes them to
        the state table; a later one (an interrupted redrive run again, a duplicate message)
        puts those same bytes, even if the fix changed meanwhile, so that every copy lands in
        the state item that knows its redrive id."""
        from tidegate.state.dynamodb import DynamoStore

        store = DynamoStore(self.targets.table)
        expire_at = int(time.time()) + _LEDGER_TTL_S
        settled = []
        for letter, record in chosen:
            rid = self.redrive_id(letter)
            earlier = store.put_new({"PK": f"{_LEDGER_PREFIX}{rid}", "SK": _LEDGER_SK,
                                     "data": record, "at": int(time.time() * 1000),
                                     "expire_at": expire_at})
            if earlier is not None and bytes(earlier["data"]) != record:
                self.changed.append(letter)
                record = bytes(earlier["data"])
            settled.append((letter, record))
        return settled

    def put(self, chosen: list[tuple[Letter, bytes]]) -> None:
        from tidegate_dev.local.producer import partition_key

        if not chosen:
            return
        chosen = self.settle(chosen)
        # The aggregation key as partition key, as producers must (it orders a key's records).
        keys = [partition_key(self.pipeline, record) for _, record in chosen]
        values = [self.envelope(letter, record) for letter, record in chosen]
        if self.pipeline.source.type == "msk":
            from tidegate_dev.local.kafka import produce

            produce(str(self.kafka_bootstrap), self.targets.source_stream, keys, values)
            return
        _put_records(self.targets.source_stream, keys, values)


def _put_records(stream: str, keys: list[str], values: list[bytes]) -> None:
    """PutRecords, retrying only the entries refused (throttled), with jittered backoff."""
    import random

    kinesis = client("kinesis")
    pending = [{"Data": v, "PartitionKey": k} for k, v in zip(keys, values, strict=True)]
    for attempt in range(30):
        out = kinesis.put_records(StreamName=stream, Records=pending)
        pending = [entry for entry, result in zip(pending, out["Records"], strict=True)
                   if result.get("ErrorCode")]
        if not pending:
            return
        time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise RuntimeError(f"{stream}: {len(pending)} records still refused after 30 tries")


@dataclass
class RedriveReport:
    redriven: list[Letter] = field(default_factory=list)
    kept: list[tuple[Letter, str]] = field(default_factory=list)
    refused: list[Letter] = field(default_factory=list)
    other_reasons: int = 0


def run_redrive(job: Redrive, queue: Queue, *, dry_run: bool = False,
                limit: int | None = None) -> RedriveReport:
    """Page by page: plan, put, then delete what was put. Kept and refused messages stay
    hidden until the end, so a page never brings them back, then are released."""
    report = RedriveReport()
    try:
        for page in queue.pages():
            chosen = [x for x in page if job.reason is None or x.reason == job.reason]
            report.other_reasons += len(page) - len(chosen)
            if limit is not None:
                room = limit - len(report.redriven) - len(report.kept) - len(report.refused)
                chosen = chosen[:max(room, 0)]
            plan = job.plan(chosen)
            report.kept += plan.kept
            report.refused += plan.refused
            if not dry_run:
                job.put(plan.put)
                # Only after the put: a crash here leaves them queued, to be redriven again
                # as copies with the same redrive ids.
                queue.delete([letter for letter, _ in plan.put])
            report.redriven += [letter for letter, _ in plan.put]
            if limit is not None and (len(report.redriven) + len(report.kept)
                                      + len(report.refused)) >= limit:
                break
    finally:
        queue.release()
    return report


def render_redrive(report: RedriveReport, job: Redrive, dry_run: bool) -> None:
    from rich.markup import escape

    from tidegate_dev.cli.console import err, out

    target = job.targets.source_stream
    verb = "would redrive" if dry_run else "redriven"
    how = f", through {job.fix.__module__}:{job.fix.__name__}" if job.fix else ""
    out.print(f"{verb}: {len(report.redriven)} message(s) onto {target}{how}")
    for letter, why in report.kept:
        source = letter.source
        out.print(f"  kept in the DLQ: {escape(letter.reason)} at {source.get('partition')} "
                  f"position {source.get('position')}: {escape(why)}", soft_wrap=True)
    for letter in job.changed:
        source = letter.source
        out.print(f"  note: {escape(letter.reason)} at {source.get('partition')} position "
                  f"{source.get('position')} was redriven before as other bytes (has the fix "
                  "changed?); it went again as it did then, so that it counts once",
                  soft_wrap=True)
    if report.refused:
        names = Counter(str(x.pipeline) for x in report.refused)
        listed = ", ".join(f"'{n}'" + (f" ({c})" if len(names) > 1 else "")
                           for n, c in names.items())
        err.print(
            f"[bold red]refused:[/] {len(report.refused)} message(s) were dead-lettered by "
            f"pipeline {listed}, not '{job.pipeline.name}'; they stay in the DLQ. To put them "
            f"on {job.pipeline.name}'s source anyway: --to-pipeline {job.pipeline.name} --force"
        )


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
                  force=args.force,
                  kafka_bootstrap=args.kafka_bootstrap)
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
