"""Read back what a local run produced: sink results, dead letters, late records, state."""

from __future__ import annotations

import json
from typing import Any

from tidegate.aws import client
from tidegate.bundles import bundle_pk
from tidegate.state import keys
from tidegate_dev.local.resources import LocalDeployment


def read_stream(stream: str) -> list[bytes]:
    kinesis = client("kinesis")
    shards = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"]
    out: list[bytes] = []
    for shard in sorted(shards, key=lambda s: s["ShardId"]):
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out += [r["Data"] for r in page.get("Records", [])]
            if not page.get("Records") and page.get("MillisBehindLatest", 0) == 0:
                break
            iterator = page.get("NextShardIterator")
    return out


def drain_queue(url: str) -> list[str]:
    """Every message body in the queue (received and deleted)."""
    sqs = client("sqs")
    bodies: list[str] = []
    while True:
        page = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=300
        )
        messages = page.get("Messages", [])
        if not messages:
            return bodies
        bodies += [m["Body"] for m in messages]
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                     for i, m in enumerate(messages)],
        )


def results(deployment: LocalDeployment) -> list[dict[str, Any]]:
    if deployment.sink_read_url is None:
        raw = [data.decode("utf-8") for data in read_stream(deployment.sink_target)]
    else:
        raw = drain_queue(deployment.sink_read_url)
    return [json.loads(text) for text in raw]


def distinct_records(messages: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Dead letters and late records, one per source coordinate (delivery is at least once);
    a redriven record that failed again is the record it came from."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for body in messages:
        message = json.loads(body)
        source = message.get("redrive_of") or message.get("source", {})
        found.setdefault((str(source.get("partition")), str(source.get("position"))), message)
    return found


def aggregated_count(deployment: LocalDeployment) -> int:
    """Events held in state, each counted once: in its pane, in its session (open, or
    closed into a session result item), or in a mini-batch bundle."""
    pipeline = deployment.pipeline
    prefix = keys.key_pk(pipeline.name, pipeline.state_version, "")
    bundled = bundle_pk(pipeline.name, pipeline.state_version, 0).rsplit("#P#", 1)[0] + "#"
    ddb = client("dynamodb")
    total = 0
    kwargs: dict[str, Any] = {
        "TableName": deployment.table,
        "FilterExpression": "(begins_with(PK, :pk) AND "
        "(begins_with(SK, :p) OR SK = :open OR #session = :yes)) OR begins_with(PK, :b)",
        "ExpressionAttributeNames": {"#session": "session"},
        "ExpressionAttributeValues": {
            ":pk": {"S": prefix}, ":p": {"S": "P#"}, ":open": {"S": "S#open"},
            ":yes": {"BOOL": True}, ":b": {"S": bundled},
        },
        "ProjectionExpression": "n",
    }
    while True:
        page = ddb.scan(**kwargs)
        total += sum(int(item["n"]["N"]) for item in page.get("Items", []))
        if not page.get("LastEvaluatedKey"):
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
