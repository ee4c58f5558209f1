"""The embedded moto server's speed-ups answer exactly as moto does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tidegate.aws import client
from tidegate_dev.local.moto_speedups import cheap_sqs_sends
from tidegate_dev.local.server import endpoint


def unique(base: str) -> str:
    """moto's state belongs to the process: every test names its own resources."""
    return f"{base}-{uuid.uuid4().hex[:8]}"


def test_sqs_sends_with_the_cheap_attribute_map_keep_moto_semantics() -> None:
    with endpoint():
        sqs = client("sqs")
        plain = sqs.create_queue(QueueName=unique("plain"))["QueueUrl"]
        fifo = sqs.create_queue(
            QueueName=unique("dedup") + ".fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        strict = sqs.create_queue(QueueName=unique("strict") + ".fifo",
                                  Attributes={"FifoQueue": "true"})["QueueUrl"]

        out = sqs.send_message_batch(QueueUrl=plain, Entries=[
            {"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
        assert len(out["Successful"]) == 10
        # content-based deduplication still drops a repeated body on a FIFO queue
        for _ in range(2):
            sqs.send_message(QueueUrl=fifo, MessageBody="same", MessageGroupId="g")
        # and a FIFO queue without it still demands a deduplication id
        with pytest.raises(ClientError, match="MessageDeduplicationId"):
            sqs.send_message(QueueUrl=strict, MessageBody="x", MessageGroupId="g")

        counts = {
            url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            for url in (plain, fifo)
        }
        assert counts[plain]["ApproximateNumberOfMessages"] == "10"
        assert counts[fifo]["ApproximateNumberOfMessages"] == "1"
        assert counts[fifo]["ContentBasedDeduplication"] == "true"


def test_a_send_no_longer_looks_at_every_message_in_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cheap_sqs_sends()  # applying twice must not wrap twice
    from moto.sqs.models import Message, SQSBackend

    assert SQSBackend.send_message.tidegate_patched  # type: ignore[attr-defined]
    with endpoint():
        sqs = client("sqs")
        url = sqs.create_queue(QueueName=unique("deep"))["QueueUrl"]
        entries = [{"Id": str(i), "MessageBody": "x"} for i in range(10)]
        for _ in range(100):  # 1,000 messages in the queue
            sqs.send_message_batch(QueueUrl=url, Entries=entries)

        looked = {"n": 0}
        visible = Message.visible.fget

        def counted(message: Any) -> bool:
            looked["n"] += 1
            return bool(visible(message))

        monkeypatch.setattr(Message, "visible", property(counted))
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
        # moto alone checks every message's visibility in each of the 10 sends (10,000+)
        assert looked["n"] == 0
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "1010"
        assert looked["n"] >= 1010  # the queue's own attributes still count them



def test_reading_a_queue_back_keeps_moto_semantics() -> None:
    with endpoint():
        sqs = client("sqs")
        url = sqs.create_queue(QueueName=unique("readback"))["QueueUrl"]
        for start in range(0, 30, 10):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)])
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)

        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                    VisibilityTimeout=300)["Messages"]
        # received messages are invisible: the next receive gets ten others, never "later"
        second = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                     VisibilityTimeout=300)["Messages"]
        assert len(first) == len(second) == 10
        assert not {m["MessageId"] for m in first} & {m["MessageId"] for m in second}
        assert "later" not in {m["Body"] for m in first + second}

        entries = [{"Id": f"e{i}", "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(first)]
        out = sqs.delete_message_batch(QueueUrl=url, Entries=[
            *entries[:5], {"Id": "bogus", "ReceiptHandle": "not-a-handle"}])
        assert sorted(e["Id"] for e in out["Successful"]) == [f"e{i}" for i in range(5)]
        assert [(f["Id"], f["Code"], f["SenderFault"]) for f in out["Failed"]] == [
            ("bogus", "ReceiptHandleIsInvalid", True)]
        assert "not-a-handle" in out["Failed"][0]["Message"]
        # deleting again is accepted, as moto (and SQS) accept an already-deleted handle
        again = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        assert len(again["Successful"]) == 10 and not again.get("Failed")

        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["ApproximateNumberOfMessages"] == "10"  # 30 sent, 20 in flight
        assert attrs["ApproximateNumberOfMessagesNotVisible"] == "10"  # 10 deleted
        assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_message_past_its_retention_period_is_not_received() -> None:
    from moto.sqs.models import sqs_backends

    with endpoint():
        sqs = client("sqs")
        name = unique("short")
        url = sqs.create_queue(QueueName=name, Attributes={
            "MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        queue = sqs_backends["123456789012"]["us-east-1"].get_queue(name)
        queue._messages[0].sent_timestamp -= 61_000  # sent 61 s ago
        assert "Messages" not in sqs.receive_message(QueueUrl=url)
        sqs.send_message(QueueUrl=url, MessageBody="fresh")
        bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]]
        assert bodies == ["fresh"]


def test_draining_a_queue_no_longer_reads_its_attribute_map_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto.sqs.models import Queue

    with endpoint():
        sqs = client("sqs")
        url = sqs.create_queue(QueueName=unique("drain"))["QueueUrl"]
        for _ in range(20):
            sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": "x"} for i in range(10)])
        reads = {"n": 0}
        full = Queue.attributes.fget

        def counted(queue: Any) -> dict:
            reads["n"] += 1
            return full(queue)

        monkeypatch.setattr(Queue, "attributes", property(counted))
        from tidegate_dev.local.readback import drain_queue

        assert len(drain_queue(url)) == 200
        # moto alone reads the whole map twice for every message received (400+)
        assert reads["n"] == 0


def test_moto_lists_its_service_directory_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    import moto
    from moto import backends

    from tidegate_dev.local.moto_speedups import cached_moto_modules

    cached_moto_modules()
    root = os.path.dirname(moto.__file__)
    listed = [d for d in sorted(os.listdir(root))
              if os.path.isdir(os.path.join(root, d)) and not d.startswith("__")]
    assert list(backends.list_of_moto_modules()) == listed

    listdir = os.listdir
    listings = {"n": 0}

    def counted(path: str) -> list[str]:
        listings["n"] += os.path.abspath(path) == os.path.abspath(root)
        return listdir(path)

    with endpoint():  # the server looks up every request's host in that list
        db = client("dynamodb")
        # the first request loads moto's service models (a listing too); moto's state is
        # the process's, so other tests' tables may be listed
        tables = db.list_tables()["TableNames"]
        monkeypatch.setattr(os, "listdir", counted)
        for _ in range(3):
            assert db.list_tables()["TableNames"] == tables
    assert listings["n"] == 0
    assert "dynamodb" in backends.list_of_moto_modules()


def test_moto_looks_up_a_handlers_actions_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import inspect

    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler

    from tidegate_dev.local.moto_speedups import cached_action_names

    cached_action_names()
    expected = [name for name, _ in inspect.getmembers(DynamoHandler, inspect.isfunction)]
    assert responses.method_names_from_class(DynamoHandler) == expected
    monkeypatch.setattr(inspect, "getmembers", lambda *a, **k: [])  # as if moto asked again
    assert responses.method_names_from_class(DynamoHandler) == expected


def _table(db: Any, name: str) -> None:
    db.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                   {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "PK", "AttributeType": "S"},
                              {"AttributeName": "SK", "AttributeType": "S"}],
    )


def test_a_repeated_update_expression_applies_each_requests_values() -> None:
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from tidegate_dev.local.moto_speedups import cached_update_expressions

    cached_update_expressions()
    expression = "SET #a = if_not_exists(#a, :zero) + :v, tags = list_append(tags, :t)"
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)
    with endpoint():
        db = client("dynamodb")
        t = unique("t")
        _table(db, t)
        key = {"PK": {"S": "k"}, "SK": {"S": "s"}}
        db.put_item(TableName=t, Item={**key, "tags": {"L": []}})
        for v in (1, 10, 100):
            out = db.update_item(
                TableName=t, Key=key, UpdateExpression=expression,
                ExpressionAttributeNames={"#a": "total"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":v": {"N": str(v)},
                                           ":t": {"L": [{"N": str(v)}]}},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        # each call's values, not the first call's, went into the one parsed expression
        assert out["total"] == {"N": "111"}
        assert out["tags"] == {"L": [{"N": "1"}, {"N": "10"}, {"N": "100"}]}
        for _ in range(2):  # an invalid expression is refused every time, not cached
            with pytest.raises(ClientError, match="ValidationException"):
                db.update_item(TableName=t, Key=key, UpdateExpression="SET = :v",
                               ExpressionAttributeValues={":v": {"N": "1"}})


def test_responses_serialise_as_moto_would_with_its_own_key_lookup() -> None:
    import json

    from moto.core.responses import get_service_model
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker

    from tidegate_dev.local.moto_speedups import cached_response_keys

    cached_response_keys()
    item = {
        "PK": {"S": "k"}, "SK": {"S": "s"}, "n": {"N": "3"}, "b": {"B": "AAE="},
        "yes": {"BOOL": True}, "none": {"NULL": True}, "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]}, "m": {"M": {"x": {"L": [{"S": "y"}, {"N": "1"}]}}},
    }
    result = {"Items": [item, item], "Count": 2, "ScannedCount": 2,
              "LastEvaluatedKey": {"PK": {"S": "k"}, "SK": {"S": "s"}},
              "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}
    model = get_service_model("dynamodb")
    bodies = []
    for picker in (XFormedAttributePicker.get_possible_keys.original,  # type: ignore[attr-defined]
                   XFormedAttributePicker.get_possible_keys):
        for _ in range(2):  # the second time from the cache
            serializer = JSONSerializer(
                operation_model=model.operation_model("Query"), pretty_print=False,
                value_picker=type("P", (XFormedAttributePicker,),
                                  {"get_possible_keys": picker})(),
            )
            bodies.append(json.loads(serializer.serialize(result)["body"]))
    assert bodies[0]["Items"][0]["m"] == item["m"] and bodies[0]["Count"] == 2
    assert all(body == bodies[0] for body in bodies)


def test_plain_json_results_serialise_exactly_as_moto_would() -> None:
    from moto.core.responses import get_service_model
    from moto.core.serialize import JSONSerializer, XFormedAttributePicker

    from tidegate_dev.local.moto_speedups import direct_json_results

    direct_json_results()
    item = {
        "PK": {"S": "k"}, "n": {"N": "3"}, "b": {"B": "AAE="}, "yes": {"BOOL": False},
        "none": {"NULL": True}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]},
        "empty": {"M": {}}, "m": {"M": {"x": {"L": [{"S": "y"}, {"N": "1"}, {"L": []}]}}},
    }
    cases = [
        ("dynamodb", "Query", {"Items": [item, item], "Count": 2, "ScannedCount": 2,
                               "LastEvaluatedKey": {"PK": {"S": "k"}},
                               "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1}}),
        ("dynamodb", "UpdateItem", {"Attributes": item, "unknown": 1}),
        ("dynamodb", "BatchGetItem", {"Responses": {"t": [item]}, "UnprocessedKeys": {}}),
        ("dynamodb", "PutItem", {}),
        ("dynamodb", "GetItem", {"Item": None}),  # a None member is left out
        ("dynamodb", "BatchGetItem", {"Responses": {"t": (item,)}}),  # moto's own way
        ("kinesis", "PutRecords", {"FailedRecordCount": 0, "Records": [
            {"SequenceNumber": "1", "ShardId": "shardId-0"}], "EncryptionType": "NONE"}),
    ]
    for service, operation, result in cases:
        bodies = []
        for serialize in (JSONSerializer._serialize_result.original,  # type: ignore[attr-defined]
                          JSONSerializer._serialize_result):
            serializer = JSONSerializer(
                operation_model=get_service_model(service).operation_model(operation),
                pretty_print=False, value_picker=XFormedAttributePicker())
            bodies.append(serialize(serializer, {"body": "", "headers": {}, "status_code": 200},
                                    result))
        assert bodies[0] == bodies[1], operation  # the same JSON text, headers and status


def test_index_projections_keep_what_moto_keeps() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import SecondaryIndex

    from tidegate_dev.local.moto_speedups import narrow_index_projections

    narrow_index_projections()
    key = [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "r", "KeyType": "RANGE"}]
    with endpoint():
        db = client("dynamodb")
        p = unique("p")
        db.create_table(
            TableName=p, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"},
                       {"AttributeName": "SK", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in
                                  (("PK", "S"), ("SK", "S"), ("g", "S"), ("r", "N"))],
            GlobalSecondaryIndexes=[
                {"IndexName": "inc", "KeySchema": key, "Projection": {
                    "ProjectionType": "INCLUDE", "NonKeyAttributes": ["n", "m", "gone", "s"]}},
                {"IndexName": "keys", "KeySchema": key,
                 "Projection": {"ProjectionType": "KEYS_ONLY"}},
                {"IndexName": "all", "KeySchema": key, "Projection": {"ProjectionType": "ALL"}},
            ],
        )
        for i, n in enumerate(("1.50", "100", "-0.25")):
            db.put_item(TableName=p, Item={
                "PK": {"S": f"k{i}"}, "SK": {"S": "s"}, "g": {"S": "G"}, "r": {"N": str(i)},
                "n": {"N": n}, "m": {"M": {"x": {"L": [{"S": "y"}, {"NS": ["1", "2"]}]}}},
                "s": {"SS": ["b", "a"]}, "big": {"S": "z" * 100}})
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables[p]
        for index in table.global_indexes:
            for item in table.all_items():
                ours = SecondaryIndex.project(index, item)
                theirs = SecondaryIndex.project.original(index, item)  # type: ignore[attr-defined]
                assert ours.to_json() == theirs.to_json(), index.name
                assert (ours.hash_key, ours.range_key) == (theirs.hash_key, theirs.range_key)
        page = db.query(TableName=p, IndexName="inc", KeyConditionExpression="g = :g",
                        ExpressionAttributeValues={":g": {"S": "G"}})["Items"]
        assert [sorted(i) for i in page] == [["PK", "SK", "g", "m", "n", "r", "s"]] * 3
        assert [i["n"] for i in page] == [{"N": "1.50"}, {"N": "100"}, {"N": "-0.25"}]


def test_moto_in_its_own_process_serves_and_exits_with_its_parents_input() -> None:
    import os

    with endpoint(own_process=True) as url:
        assert os.environ["AWS_ENDPOINT_URL"] == url
        db = client("dynamodb")
        _table(db, "own")
        assert db.list_tables()["TableNames"] == ["own"]
    from tidegate_dev.local.moto_process import MotoProcess

    server = MotoProcess.start()
    server.stop()
    assert server.process.returncode == 0
