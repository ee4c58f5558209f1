"""`tidegate dlq list|show|redrive` on the clickstream pipeline, with examples/dlq_fix.py."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError

from tests.support import Deployed, deployed
from tidegate import redrive
from tidegate.aws import CLIENT_HOOKS, client
from tidegate.spec import load_pipeline_file
from tidegate_dev.cli.main import main
from tidegate_dev.local import readback
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.esm import KinesisEventSourceMapping
from tidegate_dev.local.runner import put_events, read_event_lines, run_pipeline
from tidegate_dev.ops import dlq_read

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = str(ROOT / "pipelines" / "clickstream.yaml")
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a window start (1-minute windows)


def _event(user: str, t: int | str | None, action: str, value: float) -> bytes:
    event: dict[str, Any] = {"userId": user, "action": action, "value": value}
    if t is not None:
        event["timestamp"] = t
    return json.dumps(event).encode("utf-8")


GOOD = [
    _event("u1", T0 + 1_000, "click", 1),
    _event("u1", T0 + 2_000, "purchase", 10),
    _event("u2", T0 + 3_000, "click", 1),
    _event("u1", T0 + 20_000, "click", 1),
]
NAIVE = _event("u1", "2026-01-01T00:00:05", "click", 1)  # repaired: UTC
REFUND = _event("u2", T0 + 4_000, "refund", 7.5)  # repaired: a negative purchase
TRUNCATED = b'{"userId": "u1", "timestamp": '  # cannot be repaired
NO_TIME = _event("u2", None, "click", 1)  # cannot be repaired
LINES = [GOOD[0], NAIVE, GOOD[1], REFUND, GOOD[2], TRUNCATED, GOOD[3], NO_TIME]


@pytest.fixture
def pipeline_run(moto_url: str) -> Iterator[tuple[Deployed, KinesisEventSourceMapping]]:
    """The eight lines ingested (windows left open), the DLQ holding the four poison ones."""
    with deployed(load_pipeline_file(PIPELINE), moto_url) as d:
        put_events(d.deployment.source_stream, d.deployment.pipeline, LINES)
        mapping = KinesisEventSourceMapping(d.deployment.source_stream, d.ingest.handler,
                                            batch_size=100)
        _drain(mapping, d)
        yield d, mapping


def _drain(mapping: KinesisEventSourceMapping, d: Deployed) -> None:
    while mapping.pending():
        mapping.deliver_round()
        d.closer.handler({}, LambdaContext("tidegate-closer"))


def _cli(capsys: pytest.CaptureFixture[str], d: Deployed, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["dlq", args[0], PIPELINE, "--endpoint-url", os.environ["AWS_ENDPOINT_URL"],
                 "--stream", d.deployment.source_stream, "--dlq-url", d.deployment.dlq_url,
                 "--table", d.deployment.table, *args[1:]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@contextmanager
def crash_on(operation: str) -> Iterator[list[str]]:
    """Fail the first `operation` of any SQS client made meanwhile (the command makes its
    own clients for its endpoint)."""
    fired: list[str] = []

    def fail(model: Any, **_: Any) -> None:
        if model.name == operation and not fired:
            fired.append(operation)
            raise ClientError({"Error": {"Code": "InternalError", "Message": "injected"}},
                              operation)

    def hook(service: str, made: Any) -> None:
        if service == "sqs":
            made.meta.events.register("before-parameter-build.sqs", fail)

    CLIENT_HOOKS.append(hook)
    try:
        yield fired
    finally:
        CLIENT_HOOKS.remove(hook)


def _depth(url: str) -> int:
    attrs = client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def _redriven_on_stream(d: Deployed) -> list[str]:
    """Redrive ids of the enveloped records on the source stream, one per copy."""
    ids = []
    for data in readback.read_stream(d.deployment.source_stream):
        found = redrive.unwrap_bytes(data)
        if found is not None:
            ids.append(found[0])
    return ids


def test_list_and_show_consume_nothing(
    pipeline_run: tuple[Deployed, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    d, _ = pipeline_run
    code, out, _ = _cli(capsys, d, "list", "--json")
    assert code == 0
    listed = json.loads(out)
    counts = {r["reason"]: (r["messages"], r["records"]) for r in listed["reasons"]}
    assert counts == {"invalid_timestamp": (2, 2), "schema_violation": (1, 1),
                      "invalid_json": (1, 1)}
    assert _depth(d.deployment.dlq_url) == 4  # nothing consumed, nothing left hidden

    code, out, _ = _cli(capsys, d, "list")
    assert code == 0
    table = out.splitlines()
    assert any("invalid_timestamp" in row and " 2 " in row for row in table)
    assert any("schema_violation" in row and "action" in row for row in table)

    code, out, _ = _cli(capsys, d, "show", "--reason", "invalid_timestamp", "--json")
    shown = [json.loads(row) for row in out.splitlines()]
    assert code == 0 and len(shown) == 2
    assert {s["data"].encode() for s in shown} == {NAIVE, NO_TIME}
    for item in shown:
        source = item["source"]
        assert source["stream"] == d.deployment.source_stream
        assert source["shard"] == "shardId-000000000000"
        assert int(source["sequence"]) > 0
        assert source["arrival"].startswith("20") and source["arrival"].endswith("Z")
        assert source["partition_key"] == '["u1"]' if b"u1" in item["data"].encode() \
            else source["partition_key"] == '["u2"]'
        assert item["pipeline"] == "clickstream"
        assert item["detail"].startswith("timestamp")

    code, out, _ = _cli(capsys, d, "show", "--limit", "1")
    assert code == 0 and out.count("source   stream") == 1
    assert _depth(d.deployment.dlq_url) == 4


def test_redrive_repairs_and_applies_once_even_when_interrupted(
    pipeline_run: tuple[Deployed, KinesisEventSourceMapping],
    capsys: pytest.CaptureFixture[str],
) -> None:
    d, mapping = pipeline_run
    # The DLQ is at least once: the naive-time record's message arrives twice.
    letters = dlq_read.read_all(dlq_read.Queue(d.deployment.dlq_url, confirm_wait_s=0))
    naive = next(x for x in letters if x.data() == NAIVE)
    client("sqs").send_message(QueueUrl=d.deployment.dlq_url,
                               MessageBody=json.dumps(naive.body))

    # A dry run says what it would do and changes nothing.
    code, out, _ = _cli(capsys, d, "redrive", "--fix", "examples.dlq_fix:repair", "--dry-run")
    assert json.loads(out.splitlines()[-1]) == {"redriven": 3, "kept": 2, "refused": 0,
                                                 "dry_run": True}
    assert code == 1  # two stay
    assert _redriven_on_stream(d) == [] and _depth(d.deployment.dlq_url) == 5

    # GIVEN a redrive that crashes after putting the records, before deleting them
    with crash_on("DeleteMessageBatch") as crashed:
        code, _, err = _cli(capsys, d, "redrive", "--fix", "examples.dlq_fix:repair")
    assert code == 1 and "injected" in err and "Traceback" not in err
    assert crashed == ["DeleteMessageBatch"]
    assert len(_redriven_on_stream(d)) == 3
    assert _depth(d.deployment.dlq_url) == 5  # all still there (released at once)

    # WHEN it is run again, to completion, with a fix that has changed meanwhile (naive
    # times now read as UTC-1: the record would land in a window an hour later)
    code, out, _ = _cli(capsys, d, "redrive", "--fix", "tests.ops.dlq_fixes:repair_as_azores")
    assert json.loads(out.splitlines()[-1])["redriven"] == 3
    assert "the fix cannot repair it" in out
    # (the record went again as the first run put it, so that it counts once)
    assert " ".join(out.split()).count("was redriven before as other bytes") == 2
    copies = _redriven_on_stream(d)
    assert len(copies) == 6 and len(set(copies)) == 2

    # AND the pipeline ingests what is on the stream, then closes every window
    _drain(mapping, d)
    d.close(flush=True)
    totals = d.totals()

    # THEN each repaired record counts once, every other copy is a skipped duplicate
    results = {(r["key"]["userId"], r["window_start"]): r["aggregates"]
               for r in readback.results(d.deployment)}
    assert results == {
        ("u1", T0): {"count": 4, "total_value": 13, "max_value": 10},
        ("u2", T0): {"count": 2, "total_value": -6.5, "max_value": 1},
    }
    assert totals["duplicates_skipped"] == 4
    left = readback.distinct_records(readback.drain_queue(d.deployment.dlq_url))
    assert sorted(base64.b64decode(m["data_b64"]) for m in left.values()) == sorted(
        [TRUNCATED, NO_TIME])
    # The accounting holds over the original lines: repaired records moved from
    # dead-lettered to aggregated.
    aggregated = readback.aggregated_count(d.deployment)
    assert (aggregated, len(left)) == (6, 2)
    assert len(LINES) == aggregated + len(left)


def test_redrive_refuses_another_pipelines_dead_letters(
    moto_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with deployed(load_pipeline_file(PIPELINE), moto_url) as d:
        # GIVEN a dead letter written by another pipeline (a shared or mistaken --dlq-url)
        foreign = {"pipeline": "billing", "reason": "schema_violation", "detail": "x",
                   "source": {"partition": "shardId-000000000003", "position": "17",
                              "partition_key": "k", "arrival_ms": T0},
                   "data_b64": base64.b64encode(GOOD[0]).decode("ascii")}
        client("sqs").send_message(QueueUrl=d.deployment.dlq_url,
                                   MessageBody=json.dumps(foreign))

        # WHEN redriven into clickstream without being told to, THEN it is refused and kept
        code, out, err = _cli(capsys, d, "redrive")
        assert code == 1
        assert "refused: 1 message(s) were dead-lettered by pipeline 'billing', not " \
               "'clickstream'" in " ".join(err.split())
        assert "--to-pipeline clickstream --force" in " ".join(err.split())
        assert json.loads(out.splitlines()[-1])["refused"] == 1
        assert _redriven_on_stream(d) == [] and _depth(d.deployment.dlq_url) == 1

        # --force must name the target, which must be this file's pipeline
        code, _, err = _cli(capsys, d, "redrive", "--force")
        assert code == 1 and "--to-pipeline clickstream" in err
        code, _, err = _cli(capsys, d, "redrive", "--to-pipeline", "billing", "--force")
        assert code == 1 and "'billing' is not the pipeline" in err

        # Told to: it goes onto clickstream's source, identified by where it came from
        code, out, _ = _cli(capsys, d, "redrive", "--to-pipeline", "clickstream", "--force")
        assert code == 0 and json.loads(out.splitlines()[-1])["redriven"] == 1
        assert _redriven_on_stream(d) == [
            redrive.redrive_id("billing", "shardId-000000000003", "17")]
        assert _depth(d.deployment.dlq_url) == 0


def test_a_followed_local_run_ingests_what_is_redriven_meanwhile(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The walk-through of docs/dead-letters.md: `local run --follow`, then `dlq redrive`."""
    spec = yaml.safe_load(Path(PIPELINE).read_text(encoding="utf-8"))
    spec["name"] = f"follow-{uuid.uuid4().hex[:6]}"  # a followed run keeps fixed names
    spec["source"]["stream"] = f"{spec['name']}-events"
    spec["sink"]["stream"] = f"{spec['name']}-results"
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    pipeline = load_pipeline_file(path)
    lines = read_event_lines(ROOT / "examples" / "dlq_events.jsonl")
    redriven: list[dict[str, Any]] = []

    class Follow:
        stop = threading.Event()

        def caught_up(self, url: str, deployment: Any) -> None:
            # Another process would do this: the run is waiting for more records.
            capsys.readouterr()
            main(["dlq", "redrive", str(path), "--endpoint-url", url,
                  "--fix", "examples.dlq_fix:repair"])
            redriven.append(json.loads(capsys.readouterr().out.splitlines()[-1]))
            self.stop.set()

    output = run_pipeline(pipeline, lines, endpoint_url=moto_url, follow=Follow())
    assert redriven == [{"redriven": 2, "kept": 2, "refused": 0, "dry_run": False}]
    assert {(r["key"]["userId"], r["window_start"]): r["aggregates"]
            for r in output.results} == {
        ("u1", T0): {"count": 4, "total_value": 13, "max_value": 10},
        ("u2", T0): {"count": 2, "total_value": -6.5, "max_value": 1},
    }
    assert output.summary == {"events_in": 8, "aggregated": 6, "late": 0, "dead_lettered": 2,
                              "duplicates_skipped": 0, "results": 2}


def test_redrive_onto_a_kafka_topic_applies_once(
    moto_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidegate_dev.local.delivery import BatchDelivery
    from tidegate_dev.local.kafka import KafkaEventSourceMapping, create_topic, produce
    from tidegate_dev.local.producer import partition_key

    spec = yaml.safe_load(Path(PIPELINE).read_text(encoding="utf-8"))
    topic = f"clicks-{uuid.uuid4().hex[:6]}"
    spec["source"] = {"type": "msk", "topic": topic}
    path = tmp_path / "msk.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    pipeline = load_pipeline_file(path)
    bootstrap = create_topic(None, topic, 1)  # the in-process mock cluster
    with deployed(pipeline, moto_url) as d:
        produce(bootstrap, topic, [partition_key(pipeline, x) for x in LINES], LINES)
        # A mapping that keeps its consumers when caught up (a local run's closes them).
        mapping = type("Following", (KafkaEventSourceMapping,),
                       {"pending": BatchDelivery.pending})(bootstrap, topic, d.ingest.handler)
        _drain(mapping, d)
        letters = dlq_read.read_all(dlq_read.Queue(d.deployment.dlq_url, confirm_wait_s=0))
        assert {x.source["partition"] for x in letters} == {f"{topic}-0"}

        args = ["redrive", str(path), "--endpoint-url", os.environ["AWS_ENDPOINT_URL"],
                "--dlq-url", d.deployment.dlq_url, "--table", d.deployment.table,
                "--kafka-bootstrap", bootstrap, "--fix", "examples.dlq_fix:repair"]
        # GIVEN a redrive interrupted between the put and the delete, then run again
        with crash_on("DeleteMessageBatch"):
            assert main(["dlq", *args]) == 1
        assert "injected" in capsys.readouterr().err
        assert main(["dlq", *args]) == 1  # two stay in the queue
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["redriven"] == 2

        # WHEN the mapping reads the topic on, THEN each repaired record counts once
        _drain(mapping, d)
        d.close(flush=True)
        results = {(r["key"]["userId"], r["window_start"]): r["aggregates"]["count"]
                   for r in readback.results(d.deployment)}
        assert results == {("u1", T0): 4, ("u2", T0): 2}
        assert d.totals()["duplicates_skipped"] == 2
        for part in mapping.partitions:
            part.consumer.close()
