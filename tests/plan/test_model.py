"""The capacity model's arithmetic, checked against the rules it documents.

Expectations are derived here, by hand, from the stated rules (AWS limits, the batching
window, sequential DynamoDB requests, 1 KB write / 4 KB read units); never read back from
the model itself.
"""

from __future__ import annotations

import dataclasses
import math
from itertools import pairwise

import pytest

from tidegate_dev.bench import cost
from tidegate_dev.bench.cost import expected_distinct
from tidegate_dev.plan.model import Assumptions, Calibrated, Model, Plan, Shape, Workload
from tidegate_dev.plan.zipf import Zipf

SHAPE = Shape(
    name="t", window="tumbling", size_s=60, slide_s=60, pane_s=60, source="kinesis",
    sink="sqs", index_shards=4, max_index_shards=256, pane_bytes=1_500, mark_bytes=85,
    result_bytes=300, acc_bytes=60,
)
CAL = Calibrated(
    cpu_s_per_event=20e-6, writes_over_floor=1.0, overhead_requests_per_batch=1.0,
    closer_requests_per_window=8, closer_writes_per_window=4, closer_reads_per_window=3,
)
FAST = Assumptions(ddb_latency_ms=0.5)  # a shard's ingest keeps up with 1,000 events/s


def plan(w: Workload, shape: Shape = SHAPE, a: Assumptions = FAST,
         c: Calibrated = CAL) -> Plan:
    return Model(w, shape, c, a).plan()


def uniform(rate: float, keys: int, **kw: object) -> Workload:
    fields = {"event_bytes": 100, "batch_size": 500, "zipf_s": 0.0, "partitioning": "random"}
    return Workload(events_per_second=rate, keys=keys, **{**fields, **kw})  # type: ignore[arg-type]


def test_a_small_known_case_follows_the_stated_rules() -> None:
    # GIVEN 1,000 events/s of 100 B over 1,000 equally likely keys, 1-minute tumbling windows
    p = plan(uniform(1_000, 1_000))

    # Kinesis: 1,000 records/s and 1 MiB/s a shard -> one shard; it keeps up, so no more.
    assert p.source["shards"] == 1
    assert p.ingest["parallelization_factor"] == 1
    # The 1 s batching window gathers 1,000 events; the batch size caps it at 500.
    assert p.ingest["events_per_invocation"] == 500
    assert p.ingest["invocations_per_s"] == pytest.approx(2.0)
    # Groups: distinct keys of 500 uniform draws over 1,000 keys, times the share of batches
    # (0.5 s of events in a 60 s pane) that straddle a pane boundary.
    groups = 1_000 * (1 - (1 - 1 / 1_000) ** 500) * (1 + 0.5 / 60)
    assert p.ingest["groups_per_invocation"] == pytest.approx(groups, rel=1e-3)
    # Duration: CPU at 1,024 MB's share of a vCPU, plus requests at 0.5 ms: ceil(groups /
    # 100) BatchGetItems and one watermark update in sequence, one write per group, 8 at once.
    cpu_s = 500 * 20e-6 / (1_024 / 1_769)
    wait_s = (math.ceil(groups / 100) + 1 + groups / 8) * 0.5e-3
    assert p.ingest["duration_ms"] == pytest.approx((cpu_s + wait_s) * 1_000, rel=1e-3)

    # DynamoDB: a 1,500 B pane is 2 write units and 1 read unit.
    wru = p.dynamodb["wru_per_s"]
    assert wru["ingest"] == pytest.approx(2 * groups * 2, rel=1e-3)
    assert p.dynamodb["rru_per_s"]["ingest"] == pytest.approx(2 * groups, rel=1e-3)
    assert wru["watermarks"] == pytest.approx(2.0)
    # Every key has a window a minute (60,000 events over 1,000 keys): 1,000 windows/min.
    windows_s = 1_000 / 60
    assert p.closer["windows_per_period"] == pytest.approx(1_000, rel=1e-6)
    # Each pane enters and leaves the open index once: 2 index writes.
    assert wru["open_index"] == pytest.approx(2 * windows_s, rel=1e-6)
    # Closer writes touch the pane with its snapshot (1,500 + 60 B: 2 units).
    assert wru["closer"] == pytest.approx(windows_s * 4 * 2, rel=1e-6)
    assert p.dynamodb["rru_per_s"]["closer"] == pytest.approx(windows_s * 3, rel=1e-6)
    total = wru["ingest"] + wru["watermarks"] + wru["open_index"] + wru["closer"]
    assert wru["total"] == pytest.approx(total)
    assert p.dynamodb["partitions"] == math.ceil(total / 1_000)

    # Closer: 8 requests of 0.5 ms a window, 8 windows at a time; 1,000 windows take 0.5 s
    # on one worker, inside the 10 s target: one index partition would do, the configured
    # 4 take 0.125 s.
    assert p.closer["seconds_per_window"] == pytest.approx(0.0005)
    assert p.closer["workers_needed"] == 1
    assert p.closer["seconds_to_close_window_size"] == pytest.approx(0.5, rel=1e-6)
    assert p.closer["seconds_to_close_window_size_configured"] == pytest.approx(0.125, rel=1e-6)

    # Dollars: the bench's price table, per hour.
    pr = cost.PRICES
    assert p.usd_per_hour["dynamodb_writes"] == pytest.approx(total * 3_600 * pr["ddb_wru"])
    assert p.usd_per_hour["kinesis_source"] == pytest.approx(
        pr["kinesis_shard_hour"] + 1_000 * 3_600 * pr["kinesis_put_unit"])
    assert p.usd_per_hour["sink_sqs"] == pytest.approx(
        windows_s * 3_600 / 10 * pr["sqs_request"], rel=1e-6)
    assert p.total_usd_per_hour == pytest.approx(sum(p.usd_per_hour.values()))
    assert p.flags == []


@pytest.mark.parametrize(("rate", "event_bytes", "shards"), [
    (2_500, 100, 3),  # 1,000 records/s a shard
    (1_000, 2_000, 2),  # 1 MiB/s a shard: 2 MB/s needs two
    (600, 100, 1),
])
def test_shards_follow_the_write_limits(rate: float, event_bytes: float, shards: int) -> None:
    cheap = Assumptions(ddb_latency_ms=0.01)
    assert plan(uniform(rate, 1_000, event_bytes=event_bytes), a=cheap).source["shards"] == shards


@pytest.mark.parametrize(("in_flight", "latency_ms"), [(1, 5.0), (8, 40.0)])
def test_slow_ingest_adds_shards_until_the_hottest_keeps_up(
    in_flight: int, latency_ms: float
) -> None:
    # GIVEN writes of `latency_ms`, `in_flight` at a time (the batch read and the watermark
    # write in sequence): one shard cannot write 1,000 events/s of distinct keys
    a = Assumptions(ddb_latency_ms=latency_ms, ingest_concurrency=in_flight)
    w = uniform(1_000, 100_000)
    p = plan(w, a=a)
    n = p.source["shards"]
    assert n > 1

    def busy(shards: int) -> float:
        # Batches: what 1 s gathers, grown by half while the shard falls behind (<= 500).
        rate = 1_000 / shards
        batch = min(500.0, rate)
        while True:
            keys = 100_000 * (1 - (1 - 1 / 100_000) ** batch)
            groups = min(batch, keys * (1 + min(1.0, batch / rate / 60)))
            seconds = (batch * 20e-6 * 1_769 / 1_024
                       + (math.ceil(groups / 100) + 1 + groups / in_flight) * latency_ms / 1e3)
            if rate / batch * seconds <= 0.8 or batch >= 500:
                return rate / batch * seconds
            batch = min(500.0, batch * 1.5)

    assert busy(n) <= 0.8 < busy(n - 1)  # the fewest shards that keep up
    # More group writes in flight per invocation need fewer shards.
    assert plan(w, a=dataclasses.replace(a, ingest_concurrency=4 * in_flight)).source["shards"] < n


def test_an_ingest_invocation_has_the_deployed_write_concurrency_of_groups_in_flight() -> None:
    from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY

    assert Assumptions().ingest_concurrency == LAMBDA_WRITE_CONCURRENCY == 8


def test_key_partitioning_sizes_shards_for_the_hottest_key() -> None:
    # GIVEN 2,000 events/s over 1,000 Zipf(1.1) keys, partitioned by key
    w = Workload(events_per_second=2_000, keys=1_000, event_bytes=100, zipf_s=1.1,
                 partitioning="key")
    p1 = 1 / sum(r**-1.1 for r in range(1, 1_001))
    hot = 2_000 * p1
    # The hottest key's shard takes that key plus its 1/n of the rest: <= 1,000 records/s.
    need = math.ceil(2_000 * (1 - p1) / (1_000 - hot))
    p = plan(w, a=Assumptions(ddb_latency_ms=0.01))
    assert p.source["hottest_key_events_per_s"] == pytest.approx(hot, rel=1e-6)
    assert p.source["shards"] == need
    assert p.source["hottest_shard_events_per_s"] <= 1_000


def test_more_events_never_need_less() -> None:
    plans = [plan(Workload(events_per_second=r, keys=100_000, event_bytes=90),
                  a=Assumptions()) for r in (1_000, 10_000, 100_000, 1_000_000)]
    shards = [p.source["shards"] for p in plans]
    dollars = [p.total_usd_per_hour for p in plans]
    wru = [p.dynamodb["wru_per_s"]["total"] for p in plans]
    assert shards == sorted(shards) and shards[-1] > shards[0]
    assert all(a < b for a, b in pairwise(dollars))
    assert all(a < b for a, b in pairwise(wru))


def test_bigger_items_cost_more_write_units() -> None:
    # A pane of 1,000 B is one write unit; 1,100 B is two: the ingest's WRU doubles.
    w = uniform(1_000, 1_000)
    small = plan(w, shape=dataclasses.replace(SHAPE, pane_bytes=1_000))
    big = plan(w, shape=dataclasses.replace(SHAPE, pane_bytes=1_100))
    assert big.dynamodb["wru_per_s"]["ingest"] == pytest.approx(
        2 * small.dynamodb["wru_per_s"]["ingest"])


def test_high_skew_flags_hot_keys_and_uniform_keys_do_not() -> None:
    skewed = Workload(events_per_second=100_000, keys=100_000, event_bytes=90, zipf_s=1.5,
                      partitioning="key")
    p = plan(skewed, a=Assumptions())
    # Zipf 1.5: the hottest key carries 1 / H(100,000, 1.5) of the events, ~38 %.
    share = 1 / sum(r**-1.5 for r in range(1, 100_001))
    assert p.source["hottest_key_share"] == pytest.approx(share, rel=1e-3)
    assert any(f.startswith("hot key:") and "shard" in f for f in p.flags)

    # Spread with random partition keys, the hot key's item is written by every shard and
    # carries a mark per shard: more than one item's 1,000 WCU.
    spread = plan(dataclasses.replace(skewed, partitioning="random"), a=Assumptions())
    assert spread.dynamodb["hottest_item_wru_per_s"] > 1_000
    assert spread.dynamodb["keys_over_item_limit"] >= 1
    assert any("adaptive capacity" in f for f in spread.flags)

    calm = plan(dataclasses.replace(skewed, zipf_s=0.0), a=Assumptions())
    assert not any(f.startswith("hot key") for f in calm.flags)
    assert calm.dynamodb["keys_over_item_limit"] == 0


def test_auto_partitioning_falls_back_to_random_when_a_key_outgrows_a_shard() -> None:
    w = Workload(events_per_second=50_000, keys=1_000_000, event_bytes=90, zipf_s=1.1)
    p = plan(w, a=Assumptions())
    assert 50_000 * p.source["hottest_key_share"] > 1_000
    assert p.source["partitioning"] == "random"
    assert p.ingest["parallelization_factor"] == 1  # exactly-once needs it without key order
    assert p.flags[0].startswith("partitioning: partitioning by key cannot carry the hottest "
                                 f"key ({50_000 * p.source['hottest_key_share']:,.0f} events/s)")


def test_auto_partitioning_says_what_key_partitioning_would_have_cost() -> None:
    # GIVEN uniform keys: any shard carries the hottest key, so only cost can rule it out
    w = Workload(events_per_second=10_000, keys=10_000_000, event_bytes=70, zipf_s=0.0)
    chosen = plan(w, a=Assumptions())
    by_key = plan(dataclasses.replace(w, partitioning="key"), a=Assumptions())
    # By key, a shard at exactly 1,000 records/s plus the hottest key's share is over the
    # limit: 11 shards against 10, so random keys are (slightly) cheaper
    assert (by_key.source["shards"], chosen.source["shards"]) == (11, 10)
    assert chosen.source["partitioning"] == "random"
    assert by_key.total_usd_per_hour > chosen.total_usd_per_hour
    assert chosen.flags[0] == (
        f"partitioning: partitioning by key would cost ${by_key.total_usd_per_hour:,.2f}"
        f"/hour against ${chosen.total_usd_per_hour:,.2f}/hour with random keys; this plan "
        "uses random keys, with ParallelizationFactor 1 and a high-water mark per shard in "
        "each item a key touches")


def test_closer_asks_for_more_index_partitions_when_windows_pile_up() -> None:
    # 2,000,000 keys active each minute at 8 requests x 5 ms a window, 8 windows at a time
    p = plan(uniform(1_000_000, 2_000_000), a=Assumptions())
    busy = p.closer["windows_per_period"] * 8 * 5e-3 / 8
    assert p.closer["workers_needed"] == math.ceil(busy / 10)
    assert p.closer["index_partitions_recommended"] == 256  # the pipeline file's maximum
    assert any("index_shards: 256" in f for f in p.flags)


@pytest.mark.parametrize(("keys", "draws"), [(20_000, 500), (20_000, 60_000), (1_000, 100)])
def test_zipf_sums_agree_with_the_benchs_exact_sum(keys: int, draws: int) -> None:
    z = Zipf(keys, 1.1)
    assert z.distinct(draws) == pytest.approx(expected_distinct(keys, 1.1, draws), rel=1e-3)
    assert z.total(lambda p: p) == pytest.approx(1.0)


def test_zipf_tail_buckets_keep_ten_million_keys_exact_enough() -> None:
    z = Zipf(10_000_000, 1.1)
    assert z.total(lambda p: p) == pytest.approx(1.0, rel=1e-9)
    # The top key's share: 1 / H(10^7, 1.1) with H = zeta(1.1) - tail ~ 10.5844 - 1.995
    assert 1 / z.p(1) == pytest.approx(10.5844 - 10 * (1e7 + 0.5) ** -0.1, rel=1e-3)
    assert z.p(z.ranks_above(1e-3)) > 1e-3 >= z.p(z.ranks_above(1e-3) + 1)


def test_bad_workloads_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="--events-per-second must be a positive number"):
        Model(uniform(0, 10), SHAPE, CAL, FAST)
    with pytest.raises(ValueError, match=r"--batch-size must be 1..10,000"):
        Model(uniform(10, 10, batch_size=20_000), SHAPE, CAL, FAST)


def test_msk_sizes_partitions_and_brokers() -> None:
    # GIVEN 100,000 events/s of 1,000 B from an MSK topic (100 MB/s in)
    msk = dataclasses.replace(SHAPE, source="msk")
    p = plan(uniform(100_000, 1_000_000, event_bytes=1_000), shape=msk, a=Assumptions())
    partitions = p.source["partitions"]
    # One batch at a time per partition: no ParallelizationFactor for Kafka mappings.
    assert p.ingest["parallelization_factor"] == 1
    assert p.ingest["concurrency"] == partitions
    # Brokers: at least 3, 1,000 replicas each (replication 3), 10 MB/s in each.
    brokers = max(3, math.ceil(partitions * 3 / 1_000), math.ceil(100 / 10))
    assert p.source["brokers"] == brokers
    stored_gb = 100_000 * 1_000 * 3 * 24 * 3_600 / 1e9
    assert p.usd_per_hour["msk_source"] == pytest.approx(
        brokers * 0.21 + stored_gb * 0.10 / 730)
    assert "kinesis_source" not in p.usd_per_hour
    # Event pollers: 5 concurrent invocations or 5 MB/s each.
    assert p.source["event_pollers"] == max(math.ceil(partitions / 5), math.ceil(100 / 5))
    assert any("raise kafka_max_pollers" in f for f in p.flags) == (
        p.source["event_pollers"] > 10)


def test_sessions_end_when_a_gap_passes_without_events() -> None:
    # Uniform keys each at 1,000 / 100,000 = 0.01 events/s: a session ends after an event
    # when no other follows within the 30 s gap, probability exp(-0.01 * 30).
    session = dataclasses.replace(SHAPE, window="session", size_s=30, slide_s=30, pane_s=30)
    p = plan(uniform(1_000, 100_000), shape=session)
    assert p.closer["period_s"] == 60
    assert p.closer["windows_per_period"] == pytest.approx(
        60 * 1_000 * math.exp(-0.01 * 30), rel=1e-6)
    # Keys with an event every second almost never pause for 30 s.
    busy_keys = plan(uniform(1_000, 1_000), shape=session)
    assert busy_keys.closer["windows_per_period"] < 1e-6


def test_default_quotas_are_flagged_only_when_exceeded() -> None:
    big = plan(uniform(1_000_000, 1_000_000), a=Assumptions())
    quota = [f for f in big.flags if f.startswith("quota:")]
    assert big.dynamodb["wru_per_s"]["total"] > 40_000
    assert any("write request units/s exceed an on-demand table's default 40,000" in f
               for f in quota)
    assert any("shards exceed the default 500" in f for f in quota)
    assert not [f for f in plan(uniform(1_000, 1_000)).flags if f.startswith("quota:")]


@pytest.mark.parametrize("rate", [1_000, 20_000])
def test_auto_partitioning_is_the_cheaper_feasible_choice(rate: float) -> None:
    base = Workload(events_per_second=rate, keys=1_000_000, event_bytes=90, zipf_s=0.0,
                    partitioning="auto")
    cost_of = {
        kind: plan(dataclasses.replace(base, partitioning=kind), a=Assumptions())
        for kind in ("key", "random")
    }
    chosen = plan(base, a=Assumptions())
    assert chosen.total_usd_per_hour == pytest.approx(
        min(p.total_usd_per_hour for p in cost_of.values()))
    assert chosen.source["partitioning"] == min(
        cost_of, key=lambda k: (cost_of[k].total_usd_per_hour, k != "key"))


def test_big_events_fill_the_invocation_payload_before_the_batch_size() -> None:
    # 10,000 records of 100 KB would be 1.3 GB base64-encoded; an invocation carries 6 MB:
    # at most 47 such records. A Kafka partition has no 1 MiB/s cap to stop it earlier.
    msk = dataclasses.replace(SHAPE, source="msk")
    p = plan(uniform(1_000, 1_000, event_bytes=100_000, batch_size=10_000), shape=msk)
    assert p.ingest["events_per_invocation"] == pytest.approx(6 * 2**20 / (100_000 * 4 / 3))


def test_a_closer_worker_has_the_deployed_write_concurrency_of_windows_in_flight() -> None:
    from tidegate.runtime import LAMBDA_WRITE_CONCURRENCY

    assert Assumptions().closer_concurrency == LAMBDA_WRITE_CONCURRENCY == 8
    w = uniform(10_000, 1_000_000)
    one = plan(w, a=dataclasses.replace(Assumptions(), closer_concurrency=1))
    deployed = plan(w, a=Assumptions())
    # 8 requests x 5 ms a window; 8 windows of different keys in flight share that time
    assert one.closer["seconds_per_window"] == pytest.approx(0.040)
    assert deployed.closer["seconds_per_window"] == pytest.approx(0.005)
    assert deployed.closer["workers_needed"] == math.ceil(one.closer["workers_needed"] / 8)
    assert deployed.usd_per_hour["lambda_closer"] < one.usd_per_hour["lambda_closer"]
