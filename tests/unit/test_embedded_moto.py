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

