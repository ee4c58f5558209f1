"""Section 5: dollars per million events at a given rate, from the request counts this bench
measured and public AWS on-demand prices, beside Amazon Managed Service for Apache Flink's
minimum (one KPU for the job plus the KPU Flink applications are charged for orchestration).

Prices: us-east-1, list prices without free tier or savings plans, taken 2026-11-27 from the
AWS pricing pages and their public summaries (looked up with the project's search tool):

* Lambda arm64 (the functions' architecture): $0.0000133334 per GB-s (first tier) and
  $0.20 per million requests.
* DynamoDB on-demand (after the November 2024 cut): $0.625 per million write request units,
  $0.125 per million read request units. Provisioned: $0.00065 per WCU-hour, $0.00013 per
  RCU-hour, sized here for the average rate at auto-scaling's 70 % target utilisation.
* Kinesis Data Streams provisioned: $0.015 per shard-hour, $0.014 per million PUT payload
  units (25 KB each). On-demand: $0.04 per stream-hour, $0.08 per GB in, $0.04 per GB out
  (records rounded up to 1 KB).
* Managed Service for Apache Flink: $0.11 per KPU-hour (1 vCPU, 4 GB), one extra KPU per
  application for orchestration, 50 GB of running storage per KPU at $0.10 per GB-month.
* Amazon MSK provisioned (for `tidegate plan`): kafka.m5.large $0.21 per broker-hour, broker
  storage $0.10 per GB-month.
* Sinks (for `tidegate plan`): SQS standard $0.40 per million requests (a SendMessageBatch of
  up to 10 is one request), SNS $0.50 per million publishes, EventBridge custom events $1.00
  per million.

The model's assumptions are parameters below and are printed with the figures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

PRICES_DATE = "2026-11-27"
PRICES: dict[str, float] = {
    "lambda_gb_s": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "ddb_wru": 0.625 / 1e6,
    "ddb_rru": 0.125 / 1e6,
    "ddb_wcu_hour": 0.00065,
    "ddb_rcu_hour": 0.00013,
    "kinesis_shard_hour": 0.015,
    "kinesis_put_unit": 0.014 / 1e6,
    "kinesis_od_stream_hour": 0.04,
    "kinesis_od_gb_in": 0.08,
    "kinesis_od_gb_out": 0.04,
    "flink_kpu_hour": 0.11,
    "flink_storage_gb_month": 0.10,
    "msk_broker_hour": 0.21,  # kafka.m5.large
    "msk_storage_gb_month": 0.10,
    "sqs_request": 0.40 / 1e6,
    "sns_publish": 0.50 / 1e6,
    "eventbridge_event": 1.00 / 1e6,
}
HOURS_PER_MONTH = 730
# One vCPU at 1,769 MB: Lambda's CPU share grows with memory up to there.
LAMBDA_FULL_VCPU_MB = 1_769
# Kinesis Data Streams: what one shard takes in per second.
SHARD_RECORDS_PER_S = 1_000
SHARD_BYTES_PER_S = 2**20
PUT_UNIT_BYTES = 25_600


@dataclass(frozen=True)
class Assumptions:
    rate: float = 1_000.0  # events per second, sustained
    batch_size: int = 1_000
    ingest_memory_mb: int = 512
    closer_memory_mb: int = 256
    # Each DynamoDB request waits this long in-region; the ingest writes groups in sequence.
    ddb_latency_ms: float = 5.0
    record_bytes: int = 90  # the seed's UserEvent as JSON
    closer_schedule_per_minute: float = 1.0
    flink_kpus: int = 1  # the smallest job; +1 orchestration KPU is added
    capacity: str = "on_demand"  # DynamoDB: "on_demand" or "provisioned"
    # Provisioned capacity is kept this far above the average (auto-scaling's target).
    provisioned_utilization: float = 0.7


@dataclass(frozen=True)
class Measured:
    """Per event or per window, from this run's other sections."""

    ingest_cpu_s_per_event: float
    ingest_requests_per_event: float  # DynamoDB requests the ingest makes (sequentially)
    ingest_wru_per_event: float
    ingest_rru_per_event: float
    windows_per_event: float  # results published per event in the standard workload
    closer_requests_per_window: float
    closer_wru_per_window: float
    closer_rru_per_window: float


@dataclass
class CostModel:
    assumptions: Assumptions
    lines: dict[str, float] = field(default_factory=dict)  # $ per million events

    @property
    def tidegate_total(self) -> float:
        return sum(v for k, v in self.lines.items() if not k.startswith("flink"))

    @property
    def tidegate_processing(self) -> float:
        return sum(v for k, v in self.lines.items() if k.startswith(("lambda", "dynamodb")))

    @property
    def flink_total(self) -> float:
        return self.lines["flink_minimum"] + self.lines["kinesis_provisioned"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "assumptions": asdict(self.assumptions),
            "usd_per_million_events": {k: round(v, 4) for k, v in self.lines.items()},
            "tidegate_processing": round(self.tidegate_processing, 4),
            "tidegate_total_provisioned_kinesis": round(self.tidegate_total
                                                         - self.lines["kinesis_on_demand"], 4),
            "flink_minimum_plus_kinesis": round(self.flink_total, 4),
        }


def cpu_share(memory_mb: int) -> float:
    """The share of one vCPU a Lambda function of this memory size gets."""
    return min(1.0, memory_mb / LAMBDA_FULL_VCPU_MB)


def kinesis_shards(rate: float, record_bytes: float) -> int:
    """Shards whose write limits (records and bytes per second) take `rate` records/s."""
    return max(1, math.ceil(rate / SHARD_RECORDS_PER_S),
               math.ceil(rate * record_bytes / SHARD_BYTES_PER_S))


def put_units(record_bytes: float) -> int:
    """Kinesis PUT payload units one record costs (25 KB each)."""
    return math.ceil(record_bytes / PUT_UNIT_BYTES)


def model(m: Measured, a: Assumptions, prices: dict[str, float] = PRICES) -> CostModel:
    million = 1e6
    hours = million / (a.rate * 3_600)  # how long a million events take to arrive
    out = CostModel(a)

    # Ingest Lambda: one invocation per batch; CPU at the memory size's share of a vCPU,
    # plus the DynamoDB round trips it waits for.
    invocations = million / a.batch_size
    seconds = (million * m.ingest_cpu_s_per_event / cpu_share(a.ingest_memory_mb)
               + million * m.ingest_requests_per_event * a.ddb_latency_ms / 1_000)
    out.lines["lambda_ingest"] = (invocations * prices["lambda_request"]
                                  + seconds * a.ingest_memory_mb / 1_024 * prices["lambda_gb_s"])
    # Closer Lambda: scheduled runs plus the work per window (requests in sequence).
    windows = million * m.windows_per_event
    closer_runs = hours * 60 * a.closer_schedule_per_minute
    closer_s = windows * m.closer_requests_per_window * a.ddb_latency_ms / 1_000
    out.lines["lambda_closer"] = (closer_runs * prices["lambda_request"]
                                  + closer_s * a.closer_memory_mb / 1_024 * prices["lambda_gb_s"])
    if a.capacity == "provisioned":
        # Capacity units held for the hours a million events take, at the average rate.
        def held(units_per_event: float, price_per_hour: float) -> float:
            per_s = a.rate * units_per_event / a.provisioned_utilization
            return per_s * hours * price_per_hour

        out.lines["dynamodb_ingest"] = (held(m.ingest_wru_per_event, prices["ddb_wcu_hour"])
                                        + held(m.ingest_rru_per_event, prices["ddb_rcu_hour"]))
        per_event = m.windows_per_event
        out.lines["dynamodb_closer"] = (
            held(per_event * m.closer_wru_per_window, prices["ddb_wcu_hour"])
            + held(per_event * m.closer_rru_per_window, prices["ddb_rcu_hour"]))
    else:
        out.lines["dynamodb_ingest"] = million * (m.ingest_wru_per_event * prices["ddb_wru"]
                                                  + m.ingest_rru_per_event * prices["ddb_rru"])
        out.lines["dynamodb_closer"] = windows * (m.closer_wru_per_window * prices["ddb_wru"]
                                                  + m.closer_rru_per_window * prices["ddb_rru"])
    # Source stream, both capacity modes (the totals use provisioned; on-demand is shown).
    shards = kinesis_shards(a.rate, a.record_bytes)
    out.lines["kinesis_provisioned"] = (shards * hours * prices["kinesis_shard_hour"]
                                        + million * put_units(a.record_bytes)
                                        * prices["kinesis_put_unit"])
    gb = million * math.ceil(a.record_bytes / 1_024) * 1_024 / 2**30
    out.lines["kinesis_on_demand"] = (hours * prices["kinesis_od_stream_hour"]
                                      + gb * (prices["kinesis_od_gb_in"]
                                              + prices["kinesis_od_gb_out"]))
    # Results go to a Kinesis sink: one PUT unit each (a result is well under 25 KB).
    out.lines["kinesis_sink_puts"] = windows * prices["kinesis_put_unit"]
    kpus = a.flink_kpus + 1
    flink_hourly = (kpus * prices["flink_kpu_hour"]
                    + a.flink_kpus * 50 * prices["flink_storage_gb_month"] / HOURS_PER_MONTH)
    out.lines["flink_minimum"] = flink_hourly * hours
    return out


def expected_distinct(keys: int, s: float, draws: float) -> float:
    """Expected distinct keys among `draws` Zipf(s) draws over `keys` keys."""
    weights = [1.0 / (rank**s) for rank in range(1, keys + 1)]
    total = sum(weights)
    return sum(1.0 - (1.0 - w / total) ** draws for w in weights)


def windows_per_event(rate: float, keys: int, s: float, window_s: float = 60.0) -> float:
    """Tumbling windows (key x minute) with events, per event, at `rate` events/s."""
    per_window = rate * window_s
    return expected_distinct(keys, s, per_window) / per_window


def sweep(m_for_rate: Any, rates: list[float], base: Assumptions) -> list[CostModel]:
    out = []
    for rate in rates:
        a = Assumptions(**{**asdict(base), "rate": rate})
        out.append(model(m_for_rate(rate), a))
    return out


def rates_table(
    m_for: Any, rates: tuple[float, ...], latencies: tuple[int, ...], base: Assumptions,
) -> list[dict[str, Any]]:
    """`cost.rates`: per rate, mini-batch latency and DynamoDB capacity mode, tidegate's and
    Flink's $ per million events and the write and read units per event behind them.
    `m_for(rate, latency_s)` gives the measured inputs."""
    out: list[dict[str, Any]] = []
    for rate in rates:
        for latency in latencies:
            m = m_for(rate, latency)
            for capacity in ("on_demand", "provisioned"):
                a = Assumptions(**{**asdict(base), "rate": rate, "capacity": capacity})
                c = model(m, a)
                breakdown = {
                    "lambda": c.lines["lambda_ingest"] + c.lines["lambda_closer"],
                    "dynamodb": c.lines["dynamodb_ingest"] + c.lines["dynamodb_closer"],
                    "kinesis": c.lines["kinesis_provisioned"] + c.lines["kinesis_sink_puts"],
                }
                out.append({
                    "events_per_s": rate,
                    "mini_batch_s": latency,
                    "capacity": capacity,
                    "tidegate_usd_per_million": round(sum(breakdown.values()), 4),
                    "flink_usd_per_million": round(c.flink_total, 4),
                    "ddb_write_units_per_event": round(
                        m.ingest_wru_per_event + m.windows_per_event * m.closer_wru_per_window, 4),
                    "ddb_read_units_per_event": round(
                        m.ingest_rru_per_event + m.windows_per_event * m.closer_rru_per_window, 4),
                    "breakdown": {k: round(v, 4) for k, v in breakdown.items()},
                })
    return out


CURVE_RATES = tuple(round(50 * (400 ** (i / 24))) for i in range(25))  # 50 .. 20,000 events/s


def crossovers(curve: list[dict[str, Any]]) -> dict[str, float | None]:
    """Per tidegate variant (`<mini-batch s>s/<capacity>`), the lowest rate from which it costs
    at least Flink's minimum (None: cheaper over the whole curve), interpolated between the
    curve's rates."""
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for row in curve:
        by_variant.setdefault(f"{row['mini_batch_s']}s/{row['capacity']}", []).append(row)
    out: dict[str, float | None] = {}
    for variant, rows in by_variant.items():
        rows.sort(key=lambda r: r["events_per_s"])
        out[variant] = None
        previous = None
        for row in rows:
            gap = row["tidegate_usd_per_million"] - row["flink_usd_per_million"]
            if gap >= 0:
                if previous is None:
                    out[variant] = row["events_per_s"]
                else:
                    (r0, g0), r1 = previous, row["events_per_s"]
                    out[variant] = round(r0 + (r1 - r0) * (-g0) / (gap - g0), 1)
                break
            previous = (row["events_per_s"], gap)
    return out
