"""Redrive: dead letters back onto the pipeline's source, exactly once.

The chosen records, optionally repaired by a user's function and checked with the ingest's
own decoder, are put back wrapped with their redrive id (tidegate/redrive.py), and only then
deleted from the queue. A crash in between leaves them in the queue; run again, the copies
on the stream share an id, and the ingest applies one of them. So that every copy lands in
the same state item even if the fix changed between the two runs, the first redrive of a
record records the bytes it put in the state table, and a later one puts those again.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidegate import redrive
from tidegate.aws import client
from tidegate.rejections import Rejected
from tidegate.spec import Pipeline
from tidegate_dev.ops.common import Targets
from tidegate_dev.ops.dlq_read import Letter, Queue

# The redrive's record of what it put back (state table, one item per redriven record).
_LEDGER_PREFIX = "R#"
_LEDGER_SK = "redrive"
_LEDGER_TTL_S = 15 * 24 * 3600  # past SQS's longest retention: no message outlives it
_MAX_LEDGER_BYTES = 350_000  # DynamoDB items hold 400 KB
_MAX_PUT_ATTEMPTS = 30

Fix = Callable[[Any], Any]


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
    from tidegate.schemas.decode import JsonDecoder
    from tidegate.schemas.event_model import compile_schema

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
    """One redrive: which messages go back, as what, and where to."""

    def __init__(self, targets: Targets, *, fix: Fix | None = None, reason: str | None = None,
                 force: bool = False, kafka_bootstrap: str | None = None) -> None:
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
        from tidegate.errors import ConditionFailedError
        from tidegate.state.dynamodb import DynamoStore

        store = DynamoStore(self.targets.table)
        expire_at = int(time.time()) + _LEDGER_TTL_S
        settled = []
        for letter, record in chosen:
            rid = self.redrive_id(letter)
            try:
                store.create_once({"PK": f"{_LEDGER_PREFIX}{rid}", "SK": _LEDGER_SK,
                                   "data": record, "at": int(time.time() * 1000),
                                   "expire_at": expire_at})
                earlier = None
            except ConditionFailedError as settled_before:
                earlier = settled_before.current
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
    kinesis = client("kinesis")
    pending = [{"Data": v, "PartitionKey": k} for k, v in zip(keys, values, strict=True)]
    for attempt in range(_MAX_PUT_ATTEMPTS):
        out = kinesis.put_records(StreamName=stream, Records=pending)
        pending = [entry for entry, result in zip(pending, out["Records"], strict=True)
                   if result.get("ErrorCode")]
        if not pending:
            return
        time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise RuntimeError(
        f"{stream}: {len(pending)} records still refused after {_MAX_PUT_ATTEMPTS} tries")


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
