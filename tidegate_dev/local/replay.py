"""Local replay: the live version consumes the log, then a new state version is built
from a starting position beside it, and (optionally) the active version is switched.

A local run is one process whose embedded moto server goes away when it exits, so the log
a replay reads is the one this process writes: `LocalReplay` deploys the pipeline, feeds
the live version (as `tidegate local run` does, without the final flush: a live pipeline
keeps running), builds the replay version through its own event-source-mapping emulator
with its own starting position, and switches once the replay has caught up
(tidegate_dev/ops/cutover.py). The replay's dead letters and late records go to queues
of its own, so a replay never repeats the live version's in the queues operators read.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import tidegate.aws
from tidegate import topology
from tidegate.aws import client
from tidegate.spec import KinesisSource, Pipeline
from tidegate.state import keys
from tidegate.state.dynamodb import DynamoStore
from tidegate.versions import ActiveVersions
from tidegate_dev.local import readback
from tidegate_dev.local.chaos import Chaos
from tidegate_dev.local.esm import KinesisEventSourceMapping, StartingPosition
from tidegate_dev.local.feeds import open_feed
from tidegate_dev.local.naming import resource_names
from tidegate_dev.local.producer import put_events
from tidegate_dev.local.resources import LocalDeployment, deploy
from tidegate_dev.local.runner import _run_closer, handler_environment
from tidegate_dev.local.server import endpoint
from tidegate_dev.ops.cutover import PartitionProgress, caught_up, expire_version, progress

Progress = Callable[[int, int], None]


class ReplayError(RuntimeError):
    """A replay that cannot run or switch as asked."""


@dataclass
class VersionRun:
    """What one state version did in this process (a row of the summary table)."""

    version: int
    role: str  # "live" or "replay"
    records: int = 0  # records its mapping read and checkpointed
    aggregated: int = 0
    late: int = 0
    dead_lettered: int = 0
    duplicates_skipped: int = 0
    windows: int = 0  # final results it computed (in the state table)
    published: int = 0  # of which it published to the sink
    seconds: float = 0.0
    caught_up: bool | None = None

    def add_totals(self, totals: dict[str, int]) -> None:
        for name in ("aggregated", "late", "dead_lettered", "duplicates_skipped"):
            setattr(self, name, getattr(self, name) + int(totals.get(name, 0)))


@dataclass
class ReplayOutput:
    live: VersionRun
    replay: VersionRun
    partitions: list[PartitionProgress]
    switched: bool = False
    handover_watermark: int | None = None
    expired_items: int = 0
    published: list[dict[str, Any]] = field(default_factory=list)  # the sink, read back
    computed: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    faults: dict[str, int] | None = None  # injected by chaos, by kind

    def rows(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(run) for run in (self.live, self.replay)]


def _check(pipeline: Pipeline) -> None:
    if not isinstance(pipeline.source, KinesisSource):
        raise ReplayError(
            f"pipeline {pipeline.name!r}: local replay reads Kinesis sources only "
            f"(source.type is {pipeline.source.type!r})"
        )


class LocalReplay:
    """One pipeline on an endpoint, with a live version and a replay version."""

    def __init__(
        self, pipeline: Pipeline, shards: int = 1, batch_size: int = 100,
        chaos_seed: int | None = None,
    ) -> None:
        _check(pipeline)
        # Faults as `local run --chaos` injects them, in both versions' invocations.
        self.chaos = Chaos(chaos_seed) if chaos_seed is not None else None
        self.pipeline = pipeline
        self.shards = shards
        self.batch_size = batch_size
        self.live = VersionRun(pipeline.state_version, "live")
        self.replay = VersionRun(pipeline.state_version + 1, "replay")
        self.expired = 0
        self._live_esm: KinesisEventSourceMapping | None = None
        self._replay_esm: KinesisEventSourceMapping | None = None
        self.deployment: LocalDeployment

    @contextmanager
    def running(self, endpoint_url: str | None = None) -> Iterator[LocalReplay]:
        with ExitStack() as stack:
            if self.chaos is not None:
                tidegate.aws.CLIENT_HOOKS.append(self.chaos.hook)  # clients made from here
                stack.callback(tidegate.aws.CLIENT_HOOKS.remove, self.chaos.hook)
                stack.enter_context(self.chaos.quick_backoff())
                # A crashed invocation flushes no metrics; Powertools warns each time.
                stack.enter_context(warnings.catch_warnings())
                warnings.filterwarnings("ignore", message="No application metrics to publish")
            stack.enter_context(endpoint(endpoint_url))
            # A shared endpoint may hold other runs: this one's resources get their own names.
            suffix = f"-{uuid.uuid4().hex[:8]}"
            self._base = resource_names(self.pipeline, suffix).base
            self.deployment = deploy(self.pipeline, self.shards, suffix)
            self.store = DynamoStore(self.deployment.table)
            self.versions = ActiveVersions(self.store, self.pipeline.name)
            yield self

    # -- the live version ------------------------------------------------------------------
    def feed_live(self, lines: list[bytes]) -> None:
        """Append `lines` to the log and let the live version consume them."""
        started = time.perf_counter()
        with handler_environment(self.deployment) as (ingest, closer, observed):
            if self._live_esm is None:
                self._live_esm = open_feed(  # type: ignore[assignment]
                    self.deployment, lines, ingest.handler, self.batch_size, chaos=self.chaos
                )
            else:
                put_events(self.deployment.source_stream, self.pipeline, lines)
            esm = self._live_esm
            assert esm is not None
            before = esm.stats.records_checkpointed
            _drive(esm, closer, self.chaos)
            self.live.records += esm.stats.records_checkpointed - before
            self.live.add_totals(observed.totals)
        self.live.seconds += time.perf_counter() - started

    # -- the replay version -------------------------------------------------------------------
    def build(
        self, start: StartingPosition, version: int | None = None,
        progress_cb: Progress | None = None,
    ) -> VersionRun:
        """Build `version` (default: one above the highest known) from `start` to the tip."""
        live_version = self.versions.ensure(self.live.version, int(time.time() * 1000))
        version = version or live_version + 1
        if version == live_version:
            raise ReplayError(f"version {version} is the live version; choose another")
        run = self.replay = VersionRun(version, "replay")
        self._replay_esm = None
        started = time.perf_counter()
        target = self.live.records
        with handler_environment(self.replay_deployment(version)) as (ingest, closer, observed):
            esm = KinesisEventSourceMapping(
                self.deployment.source_stream, ingest.handler, batch_size=self.batch_size,
                function_name="tidegate-ingest-replay", start=start, chaos=self.chaos,
            )

            def tick() -> None:
                if progress_cb is not None:
                    done = esm.stats.records_checkpointed
                    progress_cb(done, max(target, done))  # AT_TIMESTAMP: fewer than live

            _drive(esm, closer, self.chaos, tick)
            run.records = esm.stats.records_checkpointed
            run.add_totals(observed.totals)
            self._replay_esm = esm
        run.seconds = time.perf_counter() - started
        return run

    def progress(self) -> list[PartitionProgress]:
        return progress(
            self.store, self.pipeline.name, self.live.version, self.replay.version,
            at_tip=self._tips(),
        )

    def _tips(self) -> set[str]:
        """Shards the replay has read to the end of, now: nothing more on them to read."""
        esm = self._replay_esm
        if esm is None:
            return set()
        esm.pending()  # reads ahead (delivers nothing), so a buffer holds what is unread
        return {lane.name for lane in esm.lanes if not lane.buffer and lane.caught_up}

    def switch(self) -> int:
        """Make the replay version active (refused unless caught up); returns the handover
        watermark. The superseded version's state expires after the state retention."""
        rows = self.progress()
        if not caught_up(rows):
            behind = ", ".join(r.partition for r in rows if not r.caught_up)
            raise ReplayError(f"version {self.replay.version} has not caught up on {behind}")
        now = int(time.time() * 1000)
        handover = self.versions.switch(self.replay.version, now, expected=self.live.version)
        retention = int(self.deployment.env.get(topology.ENV_RETENTION,
                                                topology.DEFAULT_RETENTION_S))
        self.expired = expire_version(
            self.store, self.pipeline.name, self.live.version, now // 1000 + retention
        )
        return handover

    def finish(self) -> None:
        """The end of the bounded input, as `local run` ends: close every window of the
        replay version. What it publishes depends on whether it is active by now."""
        with handler_environment(self.replay_deployment(self.replay.version)) as (_, closer, _):
            _run_closer(closer, self.chaos, flush=True)

    def replay_deployment(self, version: int) -> LocalDeployment:
        dlq = _queue(f"{self._base}-dlq-v{version}")
        late = _queue(f"{self._base}-late-v{version}")
        env = {**self.deployment.env, topology.ENV_STATE_VERSION: str(version),
               topology.ENV_DLQ_URL: dlq, topology.ENV_LATE_URL: late}
        return dataclasses.replace(self.deployment, env=env, dlq_url=dlq, late_url=late)

    # -- reading back ------------------------------------------------------------------------
    def computed(self, version: int, final_only: bool = True) -> list[dict[str, Any]]:
        """The results a version computed, published or not (its window items)."""
        prefix = keys.key_pk(self.pipeline.name, version, "")
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.deployment.table,
            "FilterExpression": "begins_with(PK, :pk) AND begins_with(SK, :w)",
            "ExpressionAttributeValues": {":pk": {"S": prefix}, ":w": {"S": "W#"}},
        }
        while True:
            page = client("dynamodb").scan(**kwargs)
            for item in page.get("Items", []):
                if "result_json" in item:
                    result = json.loads(item["result_json"]["S"])
                    if result.get("final") or not final_only:
                        found.append(result)
            if not page.get("LastEvaluatedKey"):
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def output(self) -> ReplayOutput:
        published = readback.results(self.deployment)
        on_sink = {r["idempotency_key"] for r in published}  # a re-publication is one
        computed = {}
        for run in (self.live, self.replay):
            computed[run.version] = self.computed(run.version)
            run.windows = len(computed[run.version])
            # Whose a result is: its idempotency key includes the version that computed it.
            mine = {r["idempotency_key"] for r in self.computed(run.version, final_only=False)}
            run.published = len(on_sink & mine)
        self.replay.caught_up = caught_up(self.progress())
        return ReplayOutput(
            self.live, self.replay, self.progress(),
            switched=self.versions.active() == self.replay.version,
            expired_items=self.expired,
            published=published,
            computed=computed,
            faults=self.chaos.report() if self.chaos is not None else None,
        )


def _queue(name: str) -> str:
    return client("sqs").create_queue(QueueName=name)["QueueUrl"]


def _drive(
    esm: Any, closer: Any, chaos: Chaos | None, tick: Callable[[], Any] | None = None
) -> None:
    """Deliver until the mapping has read everything, a closer run after each round, as
    the local runner does."""
    while esm.pending():
        esm.deliver_round()
        _run_closer(closer, chaos, flush=False)
        if tick is not None:
            tick()


def replay_local(
    pipeline: Pipeline,
    lines: list[bytes],
    start: StartingPosition,
    version: int | None = None,
    switch: bool = False,
    shards: int = 1,
    batch_size: int = 100,
    endpoint_url: str | None = None,
    progress_cb: Progress | None = None,
    chaos_seed: int | None = None,
) -> ReplayOutput:
    """`tidegate replay` locally: live run over `lines`, replay from `start`, then switch
    (if asked) and close the replay version's remaining windows."""
    replay = LocalReplay(pipeline, shards, batch_size, chaos_seed)
    with replay.running(endpoint_url):
        replay.feed_live(lines)
        replay.build(start, version, progress_cb)
        handover = replay.switch() if switch else None
        replay.finish()
        output = replay.output()
        output.handover_watermark = handover
        return output
