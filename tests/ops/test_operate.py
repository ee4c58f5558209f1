"""produce -> local pipeline -> status -> tail, on one embedded moto server for the module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import pipeline_spec
from tidegate.aws import client
from tidegate.closer import CLOSING
from tidegate.spec import Pipeline, parse_pipeline
from tidegate.state import keys
from tidegate_dev.cli.main import main
from tidegate_dev.local.context import LambdaContext
from tidegate_dev.local.esm import KinesisEventSourceMapping
from tidegate_dev.local.resources import LocalDeployment, deploy
from tidegate_dev.local.runner import _collect, handler_environment
from tidegate_dev.local.server import endpoint

EVENTS = 600


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with endpoint() as started:
        yield started


def _pipeline_file(tmp_path: Path, name: str) -> tuple[Pipeline, str]:
    spec = pipeline_spec(
        name=name,
        source={"type": "kinesis", "stream": f"{name}-events"},
        sink={"type": "kinesis", "stream": f"{name}-results"},
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return parse_pipeline(spec), str(path)


def _status(capsys: pytest.CaptureFixture[str], path: str, url: str,
            *extra: str) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["status", path, "--endpoint-url", url, "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _drive(deployment: LocalDeployment, closer: Any, ingest: Any) -> int:
    """The local runner's loop over records already on the stream (put there by produce)."""
    mapping = KinesisEventSourceMapping(deployment.source_stream, ingest.handler, batch_size=100)
    rounds = 0
    while mapping.pending():
        mapping.deliver_round()
        rounds += 1
        closer.handler({}, LambdaContext("tidegate-closer"))
    return rounds


def test_produce_run_status_tail(url: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, path = _pipeline_file(tmp_path, "ops-flow")
    deployment = deploy(pipeline, shards=2)
    start = int(time.time() * 1000) - 90_000  # a minute of event time, ending near now
    code = main(["produce", path, "--endpoint-url", url, "--count", str(EVENTS), "--keys", "6",
                 "--zipf", "1.2", "--out-of-order", "1500", "--late-fraction", "0.05",
                 "--malformed-fraction", "0.03", "--seed", "11", "--start-ms", str(start),
                 "--interval-ms", "100", "--quiet"])
    produced = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0
    assert produced["sent"] == EVENTS
    assert produced["stream"] == deployment.source_stream

    with handler_environment(deployment) as (ingest, closer, observed):
        rounds = _drive(deployment, closer, ingest)
        code, before = _status(capsys, path, url)
        closer.handler({"flush": True}, LambdaContext("tidegate-closer"))
        duplicates = observed.totals["duplicates_skipped"]
    code_after, after = _status(capsys, path, url)

    # Before the flush: both shards report, windows are still open, the DLQ gates.
    assert [p["partition"] for p in before["watermark"]["partitions"]] == [
        "shardId-000000000000", "shardId-000000000001"]
    assert all(p["records_seen"] and not p["idle"] for p in before["watermark"]["partitions"])
    assert before["windows"]["open"] > 0
    assert before["windows"]["oldest_close_at"] is not None
    assert before["watermark"]["lag_ms"] is not None
    assert before["windows"]["stuck"] == 0
    assert code == 1 and any("dead-letter" in p for p in before["problems"])

    # Read the summary the way `local run` does (it drains the queues: after status).
    summary_output = _collect(deployment, EVENTS, duplicates, rounds)
    summary = summary_output.summary
    tail_code = main(["tail", path, "--endpoint-url", url, "--from-start", "--json",
                      "--max", str(summary["results"]), "--timeout", "20"])
    tailed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]

    assert summary["events_in"] == summary["aggregated"] + summary["late"] + summary[
        "dead_lettered"]
    assert summary["dead_lettered"] > 0 and summary["late"] > 0
    assert after["dlq"]["depth"] == summary["dead_lettered"]
    assert after["late"]["depth"] == summary["late"]
    assert after["windows"]["results_published"] == summary["results"]
    assert after["windows"]["emitted"] == summary["results"]
    assert after["windows"]["open"] == 0
    assert after["watermark"]["flushed"]
    reasons = dict(after["dlq"]["top_reasons"])
    # Top reasons come from a peek (SQS returns some of the messages, not all of them).
    assert 0 < sum(reasons.values()) == after["dlq"]["peeked"] <= summary["dead_lettered"]
    assert after["dlq"]["depth"] == summary["dead_lettered"]  # peeking consumed nothing
    assert code_after == 1  # the DLQ still holds what status peeked

    assert tail_code == 0
    assert {r["idempotency_key"] for r in tailed} == {
        r["idempotency_key"] for r in summary_output.results}
    assert len(tailed) == summary["results"]


def test_status_gates_on_a_stuck_window(url: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pipeline, path = _pipeline_file(tmp_path, "ops-stuck")
    deploy(pipeline, shards=1)
    code, report = _status(capsys, path, url)
    assert code == 0, report["problems"]
    assert report["problems"] == []

    # A window claimed an hour ago whose publish never completed (a closer that died).
    start = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    client("dynamodb").put_item(TableName=report["resources"]["table"], Item={
        "PK": {"S": keys.key_pk(pipeline.name, pipeline.state_version, '["u1"]')},
        "SK": {"S": keys.window_sk(start)},
        "state": {"S": CLOSING},
        "result_json": {"S": "{}"},
        "n": {"N": "1"},
        "version": {"N": "1"},
    })
    code, report = _status(capsys, path, url)
    assert code == 1
    assert report["windows"]["stuck"] == 1
    assert report["windows"]["stuck_examples"][0]["close_at"] == start + 10_000
    assert any("stuck" in p for p in report["problems"])
    # A threshold longer than its age does not count it.
    code, report = _status(capsys, path, url, "--stuck-after", "2h")
    assert code == 0 and report["windows"]["closing"] == 1

    main(["status", path, "--endpoint-url", url])  # the screen renders too
    assert "stuck 1" in capsys.readouterr().out


def test_status_follows_the_live_state_version_after_a_replay_switch(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tidegate.state.dynamodb import DynamoStore
    from tidegate.versions import ActiveVersions

    pipeline, path = _pipeline_file(tmp_path, "ops-versions")
    deploy(pipeline, shards=1)
    code, report = _status(capsys, path, url)
    assert report["state_version"] == {"file": 1, "active": None, "shown": 1}

    # GIVEN a replay built version 2 and switched to it; version 2 has a stuck window
    active = ActiveVersions(DynamoStore(report["resources"]["table"]), pipeline.name)
    active.ensure(1, now_ms=0)
    active.switch(2, now_ms=0)
    start = (int(time.time() * 1000) - 3_600_000) // 10_000 * 10_000
    client("dynamodb").put_item(TableName=report["resources"]["table"], Item={
        "PK": {"S": keys.key_pk(pipeline.name, 2, '["u1"]')},
        "SK": {"S": keys.window_sk(start)},
        "state": {"S": CLOSING}, "result_json": {"S": "{}"},
        "n": {"N": "1"}, "version": {"N": "1"},
    })
    code, report = _status(capsys, path, url)
    # THEN status reads version 2's state, and flags the file still naming version 1
    assert report["state_version"] == {"file": 1, "active": 2, "shown": 2}
    assert report["windows"]["stuck"] == 1
    assert code == 1
    assert any("state_version: 1" in p for p in report["problems"])
    # AND the old version can still be looked at on request
    code, report = _status(capsys, path, url, "--state-version", "1")
    assert report["state_version"]["shown"] == 1 and report["windows"]["stuck"] == 0
