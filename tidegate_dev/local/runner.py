"""`tidegate local run`: one pipeline, end to end, on the embedded (or given) endpoint."""

from __future__ import annotations

import base64
import functools
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import tidegate.aws
from tidegate import observe
from tidegate.dlq import QueueOutput, dead_letter
from tidegate.rejections import RECORD_TOO_LARGE
from tidegate.sources.records import SourceRecord
from tidegate.spec import Pipeline
from tidegate_dev.local import readback
from tidegate_dev.local.chaos import Chaos, ChaosCrash
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.feeds import open_feed
from tidegate_dev.local.producer import partition_key, put_events  # noqa: F401 - public here
from tidegate_dev.local.resources import LocalDeployment, deploy
from tidegate_dev.local.server import endpoint

_MAX_CLOSER_ATTEMPTS = 200
# Kinesis takes records of up to 1 MiB, data and partition key together; MSK's default
# message.max.bytes is about the same. A producer gets a larger record refused, so it never
# enters the log: the run dead-letters it in the producer's place instead of failing.
MAX_RECORD_BYTES = 1_048_576
_FOLLOW_CLOSER_S = 10.0  # a followed run's closer schedule while the source is quiet

Progress = Callable[[int, int], None]  # (records checkpointed, events in)


class RunObserver(Protocol):
    """Watches a run without changing it (the `--timeline` picture): every delivered batch
    (retries and duplicates included), each closer round's outcome (None if none was
    recorded), and the output, whose dead letters and late records give the verdicts."""

    def on_batch(self, event: dict[str, Any]) -> None: ...

    def on_round(self, outcome: Any, flush: bool) -> None: ...

    def on_finish(self, output: RunOutput) -> None: ...


@dataclass
class RunOutput:
    summary: dict[str, int]
    results: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    late: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    chaos: dict[str, int] | None = None  # faults injected, by kind


def read_event_lines(path: str | Path) -> list[bytes]:
    """Each non-blank line, as bytes: an invalid line is still sent (and dead-lettered)."""
    lines = Path(path).read_bytes().split(b"\n")
    return [line.rstrip(b"\r") for line in lines if line.strip()]


def _dropping_metrics(handler: Any, metrics: Any) -> Any:
    """The handler, with the metrics it leaves behind dropped after each invocation.

    Local runs disable metrics, and then Powertools' flush keeps the set instead of clearing
    it; at 100 values of one metric `add_metric` prints the set to stdout whatever the
    setting, into the run's summary output."""

    @functools.wraps(handler)
    def invoke(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            metrics.clear_metrics()

    return invoke


@dataclass
class Observed:
    """What the handlers of one environment did, seen through tidegate.observe: running
    totals of the ingest's outcomes and the closer's last outcome."""

    totals: dict[str, int] = field(default_factory=dict)
    last_close: Any = None

    def __call__(self, function: str, outcome: Any) -> None:
        if function == "closer":
            self.last_close = outcome
            return
        for name in ("records", "aggregated", "late", "dead_lettered", "duplicates_skipped"):
            self.totals[name] = self.totals.get(name, 0) + getattr(outcome, name)


@contextmanager
def handler_environment(deployment: LocalDeployment) -> Iterator[tuple[Any, Any, Observed]]:
    """Set the deployed environment contract and return freshly cold-started handlers, and
    what they are seen doing."""
    from functions.closer import handler as closer_handler
    from functions.ingest import handler as ingest_handler

    saved = {k: os.environ.get(k) for k in deployment.env}
    saved.update({k: v for k, v in os.environ.items() if k.startswith("TIDEGATE_")})
    os.environ.update(deployment.env)
    ingest_handler.reset()
    closer_handler.reset()
    # Loggers read their level when the module is first imported; apply this run's.
    for module in (ingest_handler, closer_handler):
        module.logger.setLevel(deployment.env["POWERTOOLS_LOG_LEVEL"])
    handlers = {module: module.handler for module in (ingest_handler, closer_handler)}
    for module, handler in handlers.items():
        module.handler = _dropping_metrics(handler, module.metrics)
    observed = Observed()
    observe.OBSERVERS.append(observed)
    try:
        yield ingest_handler, closer_handler, observed
    finally:
        observe.OBSERVERS.remove(observed)
        for module, handler in handlers.items():
            module.handler = handler
        ingest_handler.reset()
        closer_handler.reset()
        # Feeds may add variables during the run (Kafka partitions): drop those too.
        for name in [k for k in os.environ if k.startswith("TIDEGATE_") and k not in saved]:
            os.environ.pop(name)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_pipeline(
    pipeline: Pipeline,
    lines: list[bytes],
    shards: int = 1,
    batch_size: int = 100,
    endpoint_url: str | None = None,
    flush: bool = True,
    progress: Progress | None = None,
    chaos_seed: int | None = None,
    kafka_bootstrap: str | None = None,
    observer: RunObserver | None = None,
    follow: Follow | None = None,
    window_batches: int | None = None,
) -> RunOutput:
    """`window_batches`: with `mini_batch`, end each of the mapping's tumbling windows after
    that many batches of a shard (default: when its time passes or the shard runs dry)."""
    chaos = Chaos(chaos_seed) if chaos_seed is not None else None
    if chaos is not None:
        tidegate.aws.CLIENT_HOOKS.append(chaos.hook)
        # A crashed invocation flushes no metrics; Powertools warns about it every time.
        warnings.filterwarnings("ignore", message="No application metrics to publish")
    try:
        with endpoint(endpoint_url) as url, (
            chaos.quick_backoff() if chaos else nullcontext()
        ):
            # A shared endpoint may hold earlier runs: give this run's resources their own
            # names; a followed run keeps the names the ops commands look for.
            suffix = "" if endpoint_url is None or follow else f"-{uuid.uuid4().hex[:8]}"
            deployment = _deploy(pipeline, shards, suffix, url)
            sendable = _refuse_oversized(deployment, lines)
            arrivals = _Arrivals() if follow is not None else None
            with handler_environment(deployment) as (ingest, closer, observed):
                handler = ingest.handler if observer is None else _observed(ingest, observer)
                if arrivals is not None:
                    handler = arrivals.watch(handler)
                esm = open_feed(deployment, sendable, handler, batch_size, chaos=chaos,
                                kafka_bootstrap=kafka_bootstrap, window_batches=window_batches)
                rounds = 0
                while esm.pending():
                    esm.deliver_round()
                    rounds += 1
                    _run_closer(closer, chaos, flush=False)
                    if observer is not None:
                        observer.on_round(observed.last_close, False)
                    if progress:
                        progress(esm.stats.records_checkpointed, len(sendable))
                if follow is not None and arrivals is not None:
                    arrivals.counting = True
                    follow.caught_up(url, deployment)
                    rounds += _follow(esm, closer, chaos, follow)
                duplicates = observed.totals.get("duplicates_skipped", 0)
                if flush:
                    _run_closer(closer, chaos, flush=True)
                    if observer is not None:
                        observer.on_round(observed.last_close, True)
                # Events others put on the source while a run follows it are events in too;
                # a redriven dead letter is not: it is an event already counted.
                events_in = len(lines) + (arrivals.new_events if arrivals else 0)
                output = _collect(deployment, events_in, duplicates, rounds)
    finally:
        if chaos is not None:
            tidegate.aws.CLIENT_HOOKS.remove(chaos.hook)
    if chaos is not None:
        output.chaos = chaos.report()
        output.summary["duplicate_results"] = len(output.results) - output.summary["results"]
    if observer is not None:
        observer.on_finish(output)
    return output


class Follow(Protocol):
    """A run that goes on reading its source after the input, as a deployed mapping does
    (records redriven from the dead-letter queue, events others produce), until stopped."""

    stop: threading.Event

    def caught_up(self, url: str, deployment: LocalDeployment) -> None:
        """The input is consumed; others may now use the endpoint and the resources."""
        ...


class _Arrivals:
    """Counts the records that reach the ingest handler once the input is consumed (a
    followed run), each once whatever the redeliveries, telling redriven dead letters
    apart by their envelope."""

    def __init__(self) -> None:
        self.counting = False
        self._seen: set[str] = set()
        self._redriven: set[str] = set()

    @property
    def new_events(self) -> int:
        return len(self._seen) - len(self._redriven)

    def watch(self, handler: Callable[[dict[str, Any], Any], Any]) -> Callable[..., Any]:
        from tidegate import redrive

        prefix = base64.b64encode(redrive.MAGIC).decode("ascii")

        def invoke(event: dict[str, Any], context: Any) -> Any:
            if self.counting:
                for record in event.get("Records", []):
                    coordinate = str(record.get("eventID"))
                    self._seen.add(coordinate)
                    if record.get("kinesis", {}).get("data", "").startswith(prefix):
                        self._redriven.add(coordinate)
            return handler(event, context)

        return invoke


def _refuse_oversized(deployment: LocalDeployment, lines: list[bytes]) -> list[bytes]:
    """The lines a producer could put on the source; the others go to the dead-letter
    queue as `record_too_large`, with their place in the input as coordinates."""
    pipeline = deployment.pipeline
    sendable: list[bytes] = []
    refused: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        key = partition_key(pipeline, line)
        size = len(line) + len(key.encode("utf-8"))
        if size <= MAX_RECORD_BYTES:
            sendable.append(line)
            continue
        record = SourceRecord(
            partition="input", position=str(number),
            data_b64=base64.b64encode(line).decode("ascii"),
            arrival_ms=int(time.time() * 1000), partition_key=key,
        )
        refused.append(dead_letter(
            pipeline.name, record, RECORD_TOO_LARGE,
            f"event {number} of the input is {size:,} bytes with its partition key; the "
            f"source takes records of at most {MAX_RECORD_BYTES:,} bytes",
        ))
    if refused and QueueOutput(deployment.dlq_url).send(refused):
        raise RuntimeError("the dead-letter queue refused an oversized record")
    return sendable


def _deploy(pipeline: Pipeline, shards: int, suffix: str, url: str) -> LocalDeployment:
    try:
        return deploy(pipeline, shards, suffix)
    except Exception as exc:
        if tidegate.aws.error_code(exc) not in ("ResourceInUseException",
                                               "ResourceAlreadyExistsException"):
            raise
        raise SystemExit(f"error: pipeline '{pipeline.name}' already has resources on {url}; "
                         "a followed run needs its own: use a fresh endpoint") from None


def _follow(esm: Any, closer: Any, chaos: Chaos | None, follow: Follow) -> int:
    """Deliver what arrives until stopped, then what is there; the closer runs after each
    round and, while the source is quiet, every few seconds as its schedule would."""
    rounds = 0
    quiet_since = time.monotonic()
    while True:
        stopping = follow.stop.is_set()
        if esm.pending():
            esm.deliver_round()
            rounds += 1
            _run_closer(closer, chaos, flush=False)
            quiet_since = time.monotonic()
            continue
        if stopping:
            return rounds
        if time.monotonic() - quiet_since >= _FOLLOW_CLOSER_S:
            _run_closer(closer, chaos, flush=False)
            quiet_since = time.monotonic()
        follow.stop.wait(0.5)


def _observed(ingest: Any, observer: RunObserver) -> Callable[[dict[str, Any], Any], Any]:
    def invoke(event: dict[str, Any], context: Any) -> Any:
        observer.on_batch(event)
        return ingest.handler(event, context)

    return invoke


def _run_closer(closer: Any, chaos: Chaos | None, flush: bool) -> None:
    """One scheduled closer run. Under chaos it is retried at once until it completes, as
    the next schedule would, so a crash changes when nothing is published, never what."""
    event = {"flush": True} if flush else {}
    if chaos is None:
        closer.handler(event, LambdaContext("tidegate-closer"))
        return
    for _ in range(_MAX_CLOSER_ATTEMPTS):
        try:
            with chaos.invocation("closer"):
                if chaos.race():
                    _racing_closers(closer, flush)
                outcome = closer.handler(event, LambdaContext("tidegate-closer"))
            if outcome["publish_failures"] == 0:
                return
        except (ChaosCrash, Exception):
            continue
    raise RuntimeError(f"the closer did not complete in {_MAX_CLOSER_ATTEMPTS} attempts")


def _racing_closers(closer_module: Any, flush: bool) -> None:
    """Closer A claims windows; closer B runs in full meanwhile; then A publishes."""
    first = closer_module.current_closer()
    watermark = first.current_watermark(flush)
    claims = first.claims(watermark)
    closer_module.handler({"flush": True} if flush else {}, LambdaContext("tidegate-closer-2"))
    first.publish(watermark, claims)


def _collect(
    deployment: LocalDeployment, events_in: int, duplicates: int, rounds: int
) -> RunOutput:
    results = readback.results(deployment)
    dead = readback.distinct_records(readback.drain_queue(deployment.dlq_url))
    late = readback.distinct_records(readback.drain_queue(deployment.late_url))
    summary = {
        "events_in": events_in,
        "aggregated": readback.aggregated_count(deployment),
        "late": len(late),
        "dead_lettered": len(dead),
        "duplicates_skipped": duplicates,
        # A result published twice (same idempotency key) is one result.
        "results": len({r.get("idempotency_key") for r in results}),
    }
    return RunOutput(summary, results, list(dead.values()), list(late.values()), rounds)
