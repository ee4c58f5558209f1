"""`tidegate produce` for an msk pipeline: keyed events on a Kafka topic."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tidegate_dev.cli.main import main

PIPELINE = """
name: kafka-produce
source: {type: msk, topic: clicks}
schema:
  name: E
  fields: {user: string, t: timestamp, v: number}
event_time: t
key: [user]
window: {type: tumbling, size: 1m}
aggregates: {n: {op: count}}
sink: {type: kinesis, stream: out}
"""


def test_produce_sends_keyed_events_to_the_topic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from tidegate_dev.local.kafka import create_topic

    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(PIPELINE)
    topic = f"clicks-{uuid.uuid4().hex[:6]}"
    bootstrap = create_topic(None, topic, 2)  # the in-process mock cluster

    # WHEN 40 generated events are produced with 5 keys
    code = main(["produce", str(pipeline), "--kafka-bootstrap", bootstrap, "--stream", topic,
                 "--count", "40", "--keys", "5", "--seed", "3", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["sent"] == 40

    # THEN the topic holds 40 valid events, keyed by their aggregation key
    seen = []
    for partition in (0, 1):
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                             "enable.partition.eof": True})
        consumer.assign([TopicPartition(topic, partition, 0)])
        while True:
            message = consumer.poll(5)
            assert message is not None, "no end-of-partition from the mock cluster"
            if message.error():
                break
            seen.append((message.key().decode(), json.loads(message.value())))
        consumer.close()
    assert len(seen) == 40
    assert all(key == json.dumps([event["user"]]) for key, event in seen)
    assert len({key for key, _ in seen}) <= 5
