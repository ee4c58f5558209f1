"""The embedded moto server's speed-ups answer exactly as moto does."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tidegate.aws import client
from tidegate_dev.local.moto_speedups import cheap_sqs_sends
from tidegate_dev.local.server import endpoint


def test_sqs_sends_with_the_cheap_attribute_map_keep_moto_semantics() -> None:
    with endpoint():
        sqs = client("sqs")
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        fifo = sqs.create_queue(
            QueueName="dedup.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        strict = sqs.create_queue(QueueName="strict.fifo", Attributes={"FifoQueue": "true"})[
            "QueueUrl"]

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
        url = sqs.create_queue(QueueName="deep")["QueueUrl"]
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
        url = sqs.create_queue(QueueName="readback")["QueueUrl"]
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
        url = sqs.create_queue(QueueName="short", Attributes={
            "MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        queue = sqs_backends["123456789012"]["us-east-1"].get_queue("short")
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
        url = sqs.create_queue(QueueName="drain")["QueueUrl"]
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
