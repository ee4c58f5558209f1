"""The capacity model behind `tidegate plan`: pure arithmetic, no I/O.

From a workload (events/s, keys and their Zipf skew, event size, batch size), the pipeline's
shape (window, item sizes, source, sink, index shards) and what `tidegate bench` measured
(CPU per event, DynamoDB requests per batch and per closed window, item sizes), it sizes
every component and prices it with the bench's price table. Every rule is a documented AWS
limit or a stated assumption; each assumption is printed with the figures.

The rules, in the order they are applied:

1. Source. A Kinesis shard takes 1,000 records/s or 1 MiB/s in and serves 2 MiB/s out (one
   consumer: the ingest mapping). The ingest runs one batch at a time per shard
   (ParallelizationFactor 1) unless the stream is partitioned by the aggregation key: then
   order per key survives concurrent batches, and a factor of up to 10 is used before adding
   shards. With key partitioning a key lives on one shard, so the hottest key must fit one;
   `auto` plans both partitionings and keeps the cheaper, unless only the cheaper one
   throttles a hot key.
   MSK: partitions play the shards' part (one concurrent batch each); brokers are at least
   three, at most 1,000 partition replicas each (kafka.m5.large), and carry a stated
   ingress each.
2. Ingest Lambda. A shard's batch is what arrives in the batching window (up to the batch
   size; more when the function falls behind). A batch costs CPU (measured, scaled by the
   memory size's share of a vCPU) plus its DynamoDB requests in sequence: one BatchGetItem
   per 100 groups, one conditional write per (key, pane) group, and the measured per-batch
   overhead (watermark). Groups are the distinct keys of the batch: with key partitioning a
   shard sees only its own keys.
3. DynamoDB. One write unit per KB of item written, one strongly consistent read unit per
   4 KB. A pane item is the measured size for the bench's pipeline, re-sized for this
   pipeline's aggregates and name, plus one high-water mark per source partition that wrote
   to it. A partition serves at most 1,000 WCU and 3,000 RCU; adaptive capacity isolates a
   hot item on its own partition, but cannot split one item, so a key whose item needs more
   is throttled.
4. Closer. Each window costs the measured DynamoDB requests, in sequence, and a worker has
   TIDEGATE_WRITE_CONCURRENCY windows of different keys in flight at once (8 in Lambda), as
   the deployed closer claims and completes them; one worker per open-window index
   partition, as the closer fan-out runs them. The index needs enough
   partitions for the workers and for its own writes (a pane enters and leaves it once per
   window it closes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY
from tidegate_dev.bench import cost
from tidegate_dev.plan.zipf import Zipf

PARTITION_WCU = 1_000
PARTITION_RCU = 3_000
WRITE_UNIT_BYTES = 1_024
READ_UNIT_BYTES = 4_096
BATCH_GET_KEYS = 100
MAX_PARALLELIZATION_FACTOR = 10
SHARD_READ_BYTES_PER_S = 2 * 2**20
MSK_PARTITIONS_PER_BROKER = 1_000  # kafka.m5.large, leader and follower replicas together
MSK_MIN_BROKERS = 3  # one per availability zone
# A Kafka mapping's event poller (provisioned mode) carries 5 MB/s or 5 concurrent invocations.
KAFKA_POLLER_MB_S = 5.0
KAFKA_POLLER_INVOCATIONS = 5
INDEX_ITEM_BYTES = 120  # keys plus next_ws and first_ws: the projection of the open index
MAX_BATCH_SIZE = 10_000  # Kinesis and MSK event source mappings
# A synchronous invocation carries at most 6 MB; records arrive base64-encoded (4/3).
INVOCATION_PAYLOAD_BYTES = 6 * 2**20
MAX_ITEM_BYTES = 400 * 1_024
# Default quotas (us-east-1), raised on request: worth knowing before a deploy needs more.
TABLE_ON_DEMAND_UNITS = 40_000  # read and write request units per second, per table
LAMBDA_CONCURRENCY = 1_000  # concurrent executions per Region
KINESIS_SHARDS = 500  # shards per account


@dataclass(frozen=True)
class Workload:
    events_per_second: float
    keys: int
    event_bytes: float
    batch_size: int = 500  # infra IngestSettings.batch_size
    zipf_s: float = 1.1
    # "key": producers use the aggregation key as partition key; "random"; "auto": key
    # when one shard can carry the hottest key, else random.
    partitioning: str = "auto"

    def problems(self) -> list[str]:
        out = []
        if not (self.events_per_second > 0 and math.isfinite(self.events_per_second)):
            out.append(f"--events-per-second must be a positive number, not "
                       f"{self.events_per_second}")
        if self.keys < 1:
            out.append(f"--keys must be at least 1, not {self.keys}")
        if not (self.event_bytes > 0 and math.isfinite(self.event_bytes)):
            out.append(f"--avg-event-bytes must be positive, not {self.event_bytes}")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            out.append(f"--batch-size must be 1..{MAX_BATCH_SIZE:,} (the event source "
                       f"mapping's range), not {self.batch_size}")
        if not (self.zipf_s >= 0 and math.isfinite(self.zipf_s)):
            out.append(f"--zipf must be >= 0 (0 is uniform), not {self.zipf_s}")
        if self.partitioning not in ("auto", "key", "random"):
            out.append(f"--partitioning must be auto, key or random, not "
                       f"{self.partitioning!r}")
        return out


@dataclass(frozen=True)
class Shape:
    """What the model needs from the pipeline file."""

    name: str
    window: str  # tumbling, sliding, session
    size_s: float  # window size (session: the gap)
    slide_s: float  # tumbling: the size
    pane_s: float  # sliding: gcd(size, slide)
    source: str  # kinesis, msk
    sink: str  # kinesis, sqs, sns, eventbridge
    index_shards: int
    max_index_shards: int  # what the pipeline file allows
    pane_bytes: float  # a pane (or session) item with one partition's mark
    mark_bytes: float  # each further partition's high-water mark
    result_bytes: float  # a window's result item
    acc_bytes: float  # one accumulator (a frozen snapshot adds one)


@dataclass(frozen=True)
class Calibrated:
    """Per window type, from `tidegate bench`'s measurement functions."""

    cpu_s_per_event: float  # ingest handler path with serialisation, one core
    writes_over_floor: float  # conditional writes / distinct (key, pane) groups per batch
    overhead_requests_per_batch: float  # besides batch gets and group writes: watermarks
    closer_requests_per_window: float  # DynamoDB requests, in sequence
    closer_writes_per_window: float
    closer_reads_per_window: float


@dataclass(frozen=True)
class Assumptions:
    batching_window_s: float = 1.0  # infra IngestSettings.max_batching_window_s
    ingest_memory_mb: int = 1_024  # infra IngestSettings.memory_mb
    closer_memory_mb: int = 512  # infra CloserSettings.memory_mb
    ddb_latency_ms: float = cost.Assumptions.ddb_latency_ms  # one in-region round trip
    # Group writes in flight per ingest invocation: TIDEGATE_WRITE_CONCURRENCY in Lambda
    # (Ingestor._write_groups); the batch read before them and the watermark after them
    # are in sequence.
    ingest_concurrency: int = LAMBDA_WRITE_CONCURRENCY
    # Windows of different keys in flight per closer worker: TIDEGATE_WRITE_CONCURRENCY,
    # as the closer runs in Lambda (closer.per_key; one key's windows stay in order).
    closer_concurrency: int = LAMBDA_WRITE_CONCURRENCY
    max_utilisation: float = 0.8  # busy share of a shard's one-at-a-time ingest
    close_within_s: float = 10.0  # close a period's windows this soon after they are due
    closer_schedule_per_hour: float = 60.0  # infra CloserSettings.schedule_minutes = 1
    msk_broker_ingress_mb_s: float = 10.0  # per kafka.m5.large, before replication: a guess
    msk_replication: int = 3
    msk_retention_hours: float = 24.0
    kafka_max_pollers: int = 10  # infra KafkaSourceSettings.max_pollers


@dataclass
class Plan:
    workload: Workload
    shape: Shape
    assumptions: Assumptions
    source: dict[str, Any] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)
    dynamodb: dict[str, Any] = field(default_factory=dict)
    closer: dict[str, Any] = field(default_factory=dict)
    usd_per_hour: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)

    @property
    def total_usd_per_hour(self) -> float:
        return sum(self.usd_per_hour.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": asdict(self.workload),
            "pipeline": asdict(self.shape),
            "assumptions": asdict(self.assumptions),
            "source": self.source,
            "ingest": self.ingest,
            "dynamodb": self.dynamodb,
            "closer": self.closer,
            "usd_per_hour": {**self.usd_per_hour, "total": self.total_usd_per_hour},
            "flags": self.flags,
        }


def _hot_key_trouble(p: Plan) -> bool:
    """Does the plan throttle or overfill an item, or overload a stream, for a hot key?"""
    return any(f.startswith(("hot key:", "ingest: the hottest key")) for f in p.flags)


def units(size_bytes: float, unit: int) -> int:
    """DynamoDB capacity units for one item: whole units, at least one."""
    return max(1, math.ceil(size_bytes / unit))


@dataclass(frozen=True)
class _Ingest:
    """One stream of batches: a shard, or one of its ParallelizationFactor sub-streams."""

    rate: float  # events/s into this stream
    batch: float  # events per invocation
    groups: float  # conditional writes per batch
    cpu_s: float
    wait_s: float

    @property
    def duration_s(self) -> float:
        return self.cpu_s + self.wait_s

    @property
    def utilisation(self) -> float:
        """Busy share of the stream's one-at-a-time invocations (1 = always busy)."""
        return self.rate / self.batch * self.duration_s


@dataclass(frozen=True)
class _Sizing:
    """The source and ingest as sized: everything after them depends on these."""

    shards: int  # or MSK partitions
    factor: int  # ParallelizationFactor
    hot: _Ingest  # the stream holding the hottest key
    avg: _Ingest  # an average stream

    @property
    def streams(self) -> int:
        return self.shards * self.factor

    @property
    def invocations(self) -> float:
        return self.streams * self.avg.rate / self.avg.batch


class Model:
    def __init__(self, w: Workload, shape: Shape, c: Calibrated, a: Assumptions,
                 prices: dict[str, float] = cost.PRICES) -> None:
        problems = w.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self.w, self.shape, self.c, self.a, self.prices = w, shape, c, a, prices
        self.zipf = Zipf(w.keys, w.zipf_s)
        self.rate = w.events_per_second
        self.hot_share = self.zipf.p(1)
        self._partition_by(w.partitioning != "random")

    def _partition_by(self, key: bool) -> None:
        self.by_key = key
        self.partitioning = "key" if key else "random"
        # ParallelizationFactor > 1 keeps order per key only when partitioned by key; MSK
        # mappings have no such setting (one batch per partition at a time).
        self.max_factor = MAX_PARALLELIZATION_FACTOR if (
            key and self.shape.source == "kinesis") else 1

    def _shard_limit(self) -> float:
        """Records/s one Kinesis shard takes in, by count or bytes."""
        return min(cost.SHARD_RECORDS_PER_S, cost.SHARD_BYTES_PER_S / self.w.event_bytes)

    def _key_feasible(self) -> bool:
        """Can one stream carry the hottest key (partitioning by key puts it on one)?"""
        if self.shape.source == "kinesis" and self.rate * self.hot_share >= self._shard_limit():
            return False
        return self._fits(2.0**40)

    # -- ingest ----------------------------------------------------------------------------
    def _groups(self, batch: float, streams: float, rate: float) -> float:
        """Distinct (key, pane) groups of one batch, times the measured excess over them."""
        if self.by_key:
            # A stream holds 1/streams of the keys: its batch of b events is its share of
            # the b * streams events all streams receive meanwhile.
            keys = self.zipf.distinct(batch * streams) / streams
        else:
            keys = self.zipf.distinct(batch)
        # A batch spans batch / rate seconds of event time: it straddles a pane boundary
        # that often, and then touches two panes of a key.
        straddle = min(1.0, batch / rate / self.shape.pane_s)
        return min(batch, keys * (1 + straddle)) * self.c.writes_over_floor

    def _ingest(self, streams: float, rate: float) -> _Ingest:
        """The batch one stream settles at: what the batching window gathers, or more when
        the function falls behind (Lambda then takes what has queued, up to the batch size)."""
        share = cost.cpu_share(self.a.ingest_memory_mb)
        largest = max(1.0, min(float(self.w.batch_size),
                               INVOCATION_PAYLOAD_BYTES / (self.w.event_bytes * 4 / 3)))
        batch = max(1.0, min(largest, rate * self.a.batching_window_s))
        while True:
            groups = self._groups(batch, streams, rate)
            in_sequence = math.ceil(groups / BATCH_GET_KEYS) + self.c.overhead_requests_per_batch
            rounds = in_sequence + groups / self.a.ingest_concurrency
            run = _Ingest(rate, batch, groups, batch * self.c.cpu_s_per_event / share,
                          rounds * self.a.ddb_latency_ms / 1_000)
            if run.utilisation <= self.a.max_utilisation or batch >= largest:
                return run
            batch = min(largest, batch * 1.5)

    def _hot_stream_rate(self, streams: float) -> float:
        if not self.by_key:
            return self.rate / streams
        # The hottest key's stream also takes its even share of every other key.
        return self.rate * (self.hot_share + (1 - self.hot_share) / streams)

    def _hot_stream(self, streams: float) -> _Ingest:
        return self._ingest(streams, self._hot_stream_rate(streams))

    def _fits(self, streams: float) -> bool:
        return self._hot_stream(streams).utilisation <= self.a.max_utilisation

    def _streams_needed(self, floor: int) -> tuple[int, bool]:
        """Fewest concurrent ingest streams (shards x ParallelizationFactor) at which the
        hottest keeps up; False when none does (one hot key is more than a stream)."""
        if self._fits(floor):
            return floor, True
        if self.by_key and not self._fits(2.0**40):
            return floor, False
        # Doubling, then bisection: a stream's load falls as streams grow.
        high = floor * 2
        while not self._fits(high):
            high *= 2
            if high > 2**40:
                return floor, False
        low = high // 2
        while high - low > max(1, high // 200):
            mid = (low + high) // 2
            if self._fits(mid):
                high = mid
            else:
                low = mid
        return high, True

    # -- the plan ----------------------------------------------------------------------------
    def plan(self) -> Plan:
        if self.w.partitioning != "auto":
            return self._plan()
        # By key when one stream can carry the hottest key, unless random keys cost less.
        self._partition_by(True)
        by_key = self._plan() if self._key_feasible() else None
        self._partition_by(False)
        random = self._plan()
        if by_key is not None and (
            by_key.total_usd_per_hour <= random.total_usd_per_hour
            or (_hot_key_trouble(random) and not _hot_key_trouble(by_key))
        ):
            self._partition_by(True)
            return by_key
        unit = "shard" if self.shape.source == "kinesis" else "partition"
        if by_key is None:
            why = (f"cannot carry the hottest key ({self.rate * self.hot_share:,.0f} events/s) "
                   f"on one {unit}")
        else:
            why = (f"would cost ${by_key.total_usd_per_hour:,.2f}/hour against "
                   f"${random.total_usd_per_hour:,.2f}/hour with random keys")
        random.flags.insert(0, (
            f"partitioning: partitioning by key {why}; this plan uses random keys, with "
            f"ParallelizationFactor 1 and a high-water mark per {unit} in each item a key "
            "touches"))
        return random

    def _plan(self) -> Plan:
        p = Plan(self.w, self.shape, self.a)
        sizing = self._plan_source(p)
        self._plan_dynamodb(p, sizing)
        self._plan_closer(p)
        self._flag_quotas(p, sizing)
        p.usd_per_hour = self._costs(p, sizing)
        return p

    def _shards(self) -> tuple[int, int, int, int, bool]:
        """(write-limit shards, read-limit shards, shards, ParallelizationFactor, whether
        the hottest stream keeps up) under the current partitioning."""
        w, s, rate = self.w, self.shape, self.rate
        hot_rate = rate * self.hot_share
        write_floor = cost.kinesis_shards(rate, w.event_bytes)
        read_floor = max(1, math.ceil(rate * w.event_bytes / SHARD_READ_BYTES_PER_S))
        floor = max(write_floor, read_floor) if s.source == "kinesis" else 1
        shard_limit = self._shard_limit()
        if s.source == "kinesis" and self.by_key and hot_rate < shard_limit:
            # A key lives on one shard: enough shards that the hottest key's shard, with
            # its even share of the rest, stays within a shard's write limits.
            floor = max(floor, math.ceil(rate * (1 - self.hot_share)
                                         / (shard_limit - hot_rate)))
        streams, fits = self._streams_needed(floor)
        shards = max(floor, math.ceil(streams / self.max_factor))
        factor = max(1, min(self.max_factor, math.ceil(streams / shards)))
        return write_floor, read_floor, shards, factor, fits

    def _plan_source(self, p: Plan) -> _Sizing:
        """1. Shards (or partitions) and the ingest's concurrency."""
        w, s, a, rate = self.w, self.shape, self.a, self.rate
        hot_rate = rate * self.hot_share
        write_floor, read_floor, shards, factor, fits = self._shards()
        sizing = _Sizing(shards, factor, self._hot_stream(shards * factor),
                         self._ingest(shards * factor, rate / (shards * factor)))
        if not fits:
            p.flags.append(
                f"ingest: the hottest key alone keeps a shard busy "
                f"{sizing.hot.utilisation:.1f}x over (at any shard count): more than one "
                "batch at a time can process"
            )
        shard_limit = self._shard_limit()
        if s.source == "kinesis" and self.by_key and hot_rate >= shard_limit:
            p.flags.append(
                f"hot key: the hottest key alone sends {hot_rate:,.0f} events/s, more than a "
                f"shard takes ({shard_limit:,.0f} records/s); partitioning by key cannot "
                "carry it (spread it with random partition keys, ParallelizationFactor 1, or "
                "pre-aggregate it upstream)"
            )
        common = {
            "partitioning": self.partitioning,
            "hottest_key_events_per_s": hot_rate,
            "hottest_key_share": self.hot_share,
        }
        if s.source == "kinesis":
            p.source = {
                "kind": "kinesis",
                "shards": shards,
                "write_limit_shards": write_floor,
                "read_limit_shards": read_floor,
                "events_per_shard_per_s": rate / shards,
                "hottest_shard_events_per_s": self._hot_stream_rate(shards),
                **common,
            }
        else:
            mb_s = rate * w.event_bytes / 1e6
            pollers = max(1, math.ceil(shards / KAFKA_POLLER_INVOCATIONS),
                          math.ceil(mb_s / KAFKA_POLLER_MB_S))
            if pollers > a.kafka_max_pollers:
                p.flags.append(
                    f"ingest: {pollers:,} event pollers needed (5 MB/s or 5 concurrent "
                    f"invocations each); the mapping may scale to {a.kafka_max_pollers}: raise "
                    "kafka_max_pollers"
                )
            p.source = {
                "kind": "msk",
                "partitions": shards,
                "event_pollers": pollers,
                "brokers": max(MSK_MIN_BROKERS,
                               math.ceil(shards * a.msk_replication / MSK_PARTITIONS_PER_BROKER),
                               math.ceil(mb_s / a.msk_broker_ingress_mb_s)),
                "broker_type": "kafka.m5.large",
                "ingress_mb_per_s": mb_s,
                "events_per_partition_per_s": rate / shards,
                "hottest_partition_events_per_s": self._hot_stream_rate(shards),
                **common,
            }
        avg, hot = sizing.avg, sizing.hot
        p.ingest = {
            "parallelization_factor": factor,
            "concurrency": sizing.streams,
            "events_per_invocation": avg.batch,
            "duration_ms": avg.duration_s * 1_000,
            "cpu_ms": avg.cpu_s * 1_000,
            "dynamodb_wait_ms": avg.wait_s * 1_000,
            "groups_per_invocation": avg.groups,
            "invocations_per_s": sizing.invocations,
            "utilisation": avg.utilisation,
            "hottest_shard_duration_ms": hot.duration_s * 1_000,
            "hottest_shard_utilisation": hot.utilisation,
            "memory_mb": a.ingest_memory_mb,
        }
        if factor > 1:
            p.flags.append(
                f"ingest: ParallelizationFactor {factor} keeps exactly-once only because the "
                "stream is partitioned by the aggregation key (deploy with "
                "partitioned_by_key=True); with any other partition key it must stay 1"
            )
        return sizing

    def _plan_dynamodb(self, p: Plan, sizing: _Sizing) -> None:
        """2. Write and read units: overall, per partition, for the hottest item."""
        s, c, z, rate = self.shape, self.c, self.zipf, self.rate
        avg, hot = sizing.avg, sizing.hot

        def marks(prob: float) -> float:
            """High-water marks in a key's pane item: one per partition that wrote to it."""
            if self.by_key:
                return 1.0
            events = rate * prob * s.pane_s
            return max(1.0, sizing.shards * -math.expm1(-events / sizing.shards))

        def pane_bytes(prob: float) -> float:
            return s.pane_bytes + (marks(prob) - 1) * s.mark_bytes

        def closed_bytes(prob: float) -> float:
            # The closer writes panes holding a frozen snapshot, and result items: each
            # write is counted at the larger of the two.
            return max(pane_bytes(prob) + s.acc_bytes, s.result_bytes)

        def mean_units(weight: Callable[[float], float], size: Callable[[float], float],
                       unit: int) -> float:
            """Units per item, averaged over keys in proportion to `weight`."""
            return z.total(lambda q: weight(q) * units(size(q), unit)) / z.total(weight)

        def in_batch(prob: float) -> float:  # the key is in a given batch
            return -math.expm1(-avg.batch * prob)

        def in_window(prob: float) -> float:  # the key has a window to close
            return -math.expm1(-rate * prob * s.size_s)

        writes_s = sizing.invocations * avg.groups
        ingest_wru = writes_s * mean_units(in_batch, pane_bytes, WRITE_UNIT_BYTES)
        # One read per group: the writes include the measured excess over the groups.
        ingest_rru = (writes_s / c.writes_over_floor
                      * mean_units(in_batch, pane_bytes, READ_UNIT_BYTES))
        watermark_wru = sizing.invocations * c.overhead_requests_per_batch
        windows_per_period, period_s = self._windows_per_period()
        windows_s = windows_per_period / period_s
        # A pane enters the index once; closing moves it window by window (a key change:
        # delete and put) and finally removes it.
        moves = max(0.0, s.size_s / s.slide_s - 1) if s.window == "sliding" else 0.0
        index_wru = (self._panes_per_second() * (2 + 2 * moves)
                     * units(INDEX_ITEM_BYTES, WRITE_UNIT_BYTES))
        closer_wru = windows_s * c.closer_writes_per_window * mean_units(
            in_window, closed_bytes, WRITE_UNIT_BYTES)
        closer_rru = windows_s * c.closer_reads_per_window * mean_units(
            in_window, closed_bytes, READ_UNIT_BYTES)
        total_wru = ingest_wru + watermark_wru + index_wru + closer_wru
        total_rru = ingest_rru + closer_rru
        partitions = max(1, math.ceil(total_wru / PARTITION_WCU),
                         math.ceil(total_rru / PARTITION_RCU))

        # The hottest key's current pane: one item, which adaptive capacity cannot split.
        marks_hot = marks(self.hot_share)
        hot_bytes = pane_bytes(self.hot_share)
        if self.by_key:
            hot_writes = hot.rate / hot.batch * -math.expm1(
                -hot.batch * self.hot_share * rate / hot.rate)
        else:
            hot_writes = sizing.invocations * in_batch(self.hot_share)
        hot_wru = hot_writes * units(hot_bytes, WRITE_UNIT_BYTES)
        hot_rru = hot_writes * units(hot_bytes, READ_UNIT_BYTES)
        throttled_keys = self._keys_over_item_limit(sizing)
        p.dynamodb = {
            "pane_item_bytes": s.pane_bytes,
            "hottest_pane_item_bytes": hot_bytes,
            "result_item_bytes": s.result_bytes,
            "wru_per_ingest_write": ingest_wru / writes_s if writes_s else 0.0,
            "ingest_writes_per_s": writes_s,
            "wru_per_s": {"ingest": ingest_wru, "watermarks": watermark_wru,
                          "open_index": index_wru, "closer": closer_wru, "total": total_wru},
            "rru_per_s": {"ingest": ingest_rru, "closer": closer_rru, "total": total_rru},
            "partitions": partitions,
            "wru_per_partition": total_wru / partitions,
            "rru_per_partition": total_rru / partitions,
            "hottest_item_wru_per_s": hot_wru,
            "hottest_item_rru_per_s": hot_rru,
            "hottest_item_writes_per_s": hot_writes,
            "hottest_partition_wru_per_s": max(hot_wru, watermark_wru, total_wru / partitions),
            "watermark_items_wru_per_s": watermark_wru,
            "keys_over_item_limit": throttled_keys,
        }
        if hot_wru > PARTITION_WCU or hot_rru > PARTITION_RCU:
            p.flags.append(
                f"hot key: its pane item needs {hot_wru:,.0f} WCU/s and {hot_rru:,.0f} RCU/s; "
                f"one item never gets more than a partition's {PARTITION_WCU:,} WCU / "
                f"{PARTITION_RCU:,} RCU, even isolated by adaptive capacity: throttled "
                f"({throttled_keys:,} key(s) over the limit)"
            )
        elif hot_wru > PARTITION_WCU / 2:
            p.flags.append(
                f"hot key: its pane item takes {hot_wru:,.0f} WCU/s, over half a partition's "
                f"{PARTITION_WCU:,}: relies on adaptive capacity isolating it"
            )
        if hot_bytes > MAX_ITEM_BYTES:
            p.flags.append(
                f"hot key: its pane item would hold {marks_hot:,.0f} shards' high-water marks, "
                f"{hot_bytes / 1024:,.0f} KB: over DynamoDB's 400 KB item limit, writes fail"
            )
        if watermark_wru > PARTITION_WCU:
            p.flags.append(
                f"watermarks: {watermark_wru:,.0f} writes/s land on the pipeline's one "
                "watermark partition key (one item per shard): above a partition's 1,000 WCU "
                "it relies on DynamoDB splitting the item collection by sort key"
            )

    def _plan_closer(self, p: Plan) -> None:
        """3. Open-index partitions, closer workers and the time to close."""
        s, c, a = self.shape, self.c, self.a
        windows_per_period, period_s = self._windows_per_period()
        # A worker's time per window: its requests in sequence, several windows at once.
        seconds_per_window = (c.closer_requests_per_window * a.ddb_latency_ms / 1_000
                              / a.closer_concurrency)
        busy_s = windows_per_period * seconds_per_window  # one worker, one period's windows
        workers = max(1, math.ceil(busy_s / a.close_within_s))
        index_wru = p.dynamodb["wru_per_s"]["open_index"]
        needed = max(workers, math.ceil(index_wru / (PARTITION_WCU * a.max_utilisation)))
        recommended = min(needed, s.max_index_shards)
        per_size = windows_per_period * (s.size_s / period_s if s.window == "sliding" else 1)
        p.closer = {
            "period_s": period_s,
            "windows_per_period": windows_per_period,
            "windows_per_window_size": per_size,
            "windows_per_window_size_upper_bound": self._upper_bound_windows(),
            "windows_per_s": windows_per_period / period_s,
            "requests_per_window": c.closer_requests_per_window,
            "seconds_per_window": seconds_per_window,
            "windows_per_s_per_worker": 1 / seconds_per_window if seconds_per_window else None,
            "workers_needed": workers,
            "index_partitions_needed": needed,
            "index_partitions_recommended": recommended,
            "index_partitions_configured": s.index_shards,
            "seconds_to_close_window_size": per_size * seconds_per_window / recommended,
            "seconds_to_close_window_size_configured": per_size * seconds_per_window
            / s.index_shards,
            "keeps_up": busy_s / recommended <= period_s,
            "burst_wru_per_s": p.dynamodb["wru_per_s"]["closer"] * period_s / a.close_within_s,
            "memory_mb": a.closer_memory_mb,
        }
        if s.index_shards < recommended:
            p.flags.append(
                f"closer: index_shards is {s.index_shards}; closing a period's "
                f"{windows_per_period:,.0f} windows within {a.close_within_s:g} s needs "
                f"{needed:,} (set `index_shards: {recommended}` in the pipeline file)"
            )
        if needed > s.max_index_shards:
            p.flags.append(
                f"closer: {needed:,} workers exceed the {s.max_index_shards} index partitions "
                f"a pipeline may have: a period's windows take "
                f"{busy_s / recommended:,.0f} s to close"
                + ("" if p.closer["keeps_up"] else
                   f", longer than the period ({period_s:g} s): the closer falls behind")
            )

    def _flag_quotas(self, p: Plan, sizing: _Sizing) -> None:
        for what, per_s in (("write", p.dynamodb["wru_per_s"]["total"]),
                            ("read", p.dynamodb["rru_per_s"]["total"])):
            if per_s > TABLE_ON_DEMAND_UNITS:
                p.flags.append(
                    f"quota: {per_s:,.0f} {what} request units/s exceed an on-demand table's "
                    f"default {TABLE_ON_DEMAND_UNITS:,}; raise the quota, and pre-warm the "
                    "table (warm throughput): on-demand takes up to 30 minutes to double "
                    "its previous peak"
                )
        lambdas = sizing.streams + p.closer["index_partitions_recommended"]
        if lambdas > LAMBDA_CONCURRENCY:
            p.flags.append(
                f"quota: {lambdas:,} concurrent Lambda executions (ingest and closer) exceed "
                f"the default {LAMBDA_CONCURRENCY:,} per Region"
            )
        if self.shape.source == "kinesis" and sizing.shards > KINESIS_SHARDS:
            p.flags.append(
                f"quota: {sizing.shards:,} shards exceed the default {KINESIS_SHARDS} per "
                "account (us-east-1)"
            )

    # -- pieces ------------------------------------------------------------------------------
    def _windows_per_period(self) -> tuple[float, float]:
        """Windows that close each period, and the period (s)."""
        s, z = self.shape, self.zipf
        if s.window == "session":
            # A key's session ends when no event follows within the gap (Poisson arrivals).
            gap = s.size_s
            per_s = z.total(lambda q: self.rate * q * math.exp(-self.rate * q * gap))
            return per_s * 60.0, 60.0
        # Every key with an event in a window's span has that window to close; a sliding
        # window closes every slide.
        return z.distinct(self.rate * s.size_s), s.slide_s

    def _panes_per_second(self) -> float:
        s = self.shape
        if s.window == "session":
            return self._windows_per_period()[0] / 60.0
        return self.zipf.distinct(self.rate * s.pane_s) / s.pane_s

    def _upper_bound_windows(self) -> float:
        """Every key active: K per window size, size/slide times that when sliding."""
        s = self.shape
        if s.window == "sliding":
            return self.w.keys * s.size_s / s.slide_s
        return float(self.w.keys)

    def _keys_over_item_limit(self, sizing: _Sizing) -> int:
        """Keys whose pane item needs more than one partition's write units."""
        s, streams = self.shape, sizing.streams

        def item_wru(rank: int) -> float:
            q = self.zipf.p(rank)
            if self.by_key:
                # At most one write per batch of the key's stream.
                rate = self.rate * q + self.rate / streams
                batch = min(self.w.batch_size, max(1.0, rate * self.a.batching_window_s))
                writes = rate / batch
                size = s.pane_bytes
            else:
                writes = sizing.invocations * -math.expm1(-sizing.avg.batch * q)
                marks = max(1.0, sizing.shards
                            * -math.expm1(-self.rate * q * s.pane_s / sizing.shards))
                size = s.pane_bytes + (marks - 1) * s.mark_bytes
            return writes * units(size, WRITE_UNIT_BYTES)

        if item_wru(1) <= PARTITION_WCU:
            return 0
        low, high = 1, self.w.keys  # item_wru falls with rank
        if item_wru(high) > PARTITION_WCU:
            return high
        while high - low > 1:
            mid = (low + high) // 2
            if item_wru(mid) > PARTITION_WCU:
                low = mid
            else:
                high = mid
        return low

    def _costs(self, p: Plan, sizing: _Sizing) -> dict[str, float]:
        """4. Dollars per hour by component, from the bench's price table."""
        pr, w, a, s = self.prices, self.w, self.a, self.shape
        hour = 3_600.0
        out: dict[str, float] = {}
        windows_s = p.closer["windows_per_s"]
        if s.source == "kinesis":
            out["kinesis_source"] = (sizing.shards * pr["kinesis_shard_hour"]
                                     + self.rate * hour * cost.put_units(w.event_bytes)
                                     * pr["kinesis_put_unit"])
        else:
            gb_stored = (self.rate * w.event_bytes * a.msk_replication
                         * a.msk_retention_hours * hour / 1e9)
            out["msk_source"] = (p.source["brokers"] * pr["msk_broker_hour"]
                                 + gb_stored * pr["msk_storage_gb_month"]
                                 / cost.HOURS_PER_MONTH)
        gb_s = pr["lambda_gb_s"]
        out["lambda_ingest"] = sizing.invocations * hour * (
            pr["lambda_request"] + sizing.avg.duration_s * a.ingest_memory_mb / 1_024 * gb_s)
        # The schedule's runs, and one run per worker each period.
        closer_runs = (a.closer_schedule_per_hour + p.closer["index_partitions_recommended"]
                       * hour / p.closer["period_s"])
        out["lambda_closer"] = (closer_runs * pr["lambda_request"] + windows_s * hour
                                * p.closer["seconds_per_window"] * a.closer_memory_mb / 1_024
                                * gb_s)
        out["dynamodb_writes"] = p.dynamodb["wru_per_s"]["total"] * hour * pr["ddb_wru"]
        out["dynamodb_reads"] = p.dynamodb["rru_per_s"]["total"] * hour * pr["ddb_rru"]
        results = windows_s * hour
        if s.sink == "kinesis":
            sink_shards = cost.kinesis_shards(windows_s, s.result_bytes)
            out["sink_kinesis"] = (sink_shards * pr["kinesis_shard_hour"]
                                   + results * cost.put_units(s.result_bytes)
                                   * pr["kinesis_put_unit"])
        elif s.sink == "sqs":
            out["sink_sqs"] = results / 10 * pr["sqs_request"]  # SendMessageBatch of 10
        elif s.sink == "sns":
            out["sink_sns"] = results * pr["sns_publish"]
        else:
            out["sink_eventbridge"] = results * pr["eventbridge_event"]
        return out
