"""An embedded moto server on 127.0.0.1, or any AWS-compatible endpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _linear_moto_kinesis() -> None:
    """moto's Kinesis shard finds its newest sequence number by copying every key, and
    GetRecords scans from the first record: each call costs O(records in the shard), so a
    million-event local run would take hours. Sequence numbers within a moto shard are
    consecutive integers; these lookups use that and return exactly what moto's would."""
    from moto.kinesis.models import Shard

    def newest(self: Shard) -> int:
        return next(reversed(self.records)) if self.records else 0

    def oldest(self: Shard) -> int:
        return next(iter(self.records)) if self.records else 0

    def get_records(
        self: Shard, last_sequence_id: str, limit: int | None
    ) -> tuple[list, int, int]:
        last = int(last_sequence_id)
        results: list = []
        behind_s = 0.0
        if self.records:
            latest = self.records[newest(self)]
            following = max(last + 1, oldest(self))
            while following in self.records and (limit is None or len(results) < limit):
                record = self.records[following]
                results.append(record)
                last = following
                behind_s = latest.created_at - record.created_at
                following += 1
        return results, last, int(behind_s * 1000)

    Shard.get_max_sequence_number = newest  # type: ignore[method-assign]
    Shard.get_min_sequence_number = oldest  # type: ignore[method-assign]
    Shard.get_records = get_records  # type: ignore[method-assign]


def _cheap_moto_sqs_sends() -> None:
    """moto's SendMessage reads the queue's whole attribute map to learn one flag
    (ContentBasedDeduplication), and building that map counts every message's visibility
    three times: each send costs O(queue length). A run that routes tens of thousands of
    records late or dead spent 95 % of its time there (py-spy, on the million-event soak).
    While a message is being sent, the map holds only that flag; everything else (e.g.
    GetQueueAttributes) still gets moto's own."""
    import threading

    from moto.sqs.models import Queue, SQSBackend

    if getattr(SQSBackend.send_message, "tidegate_patched", False):
        return
    sending = threading.local()
    full_attributes = Queue.attributes.fget

    def attributes(self: Queue) -> dict:
        if not getattr(sending, "active", False):
            return full_attributes(self)
        if not self.fifo_queue:
            return {}
        flag = self.content_based_deduplication
        return {"ContentBasedDeduplication": str(flag).lower() if isinstance(flag, bool)
                else flag}

    original_send = SQSBackend.send_message

    def send_message(self: SQSBackend, *args: object, **kwargs: object) -> object:
        sending.active = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            sending.active = False

    send_message.tidegate_patched = True  # type: ignore[attr-defined]
    Queue.attributes = property(attributes)  # type: ignore[method-assign,assignment]
    SQSBackend.send_message = send_message  # type: ignore[method-assign,assignment]


def _has_credentials() -> bool:
    import boto3

    return boto3.session.Session().get_credentials() is not None


@contextmanager
def endpoint(url: str | None = None) -> Iterator[str]:
    """Yield an endpoint URL with AWS_ENDPOINT_URL (and fake credentials for moto) set.

    boto3 reads AWS_ENDPOINT_URL itself, so the handlers run unmodified against it.
    """
    saved = {k: os.environ.get(k) for k in (*FAKE_CREDENTIALS, "AWS_ENDPOINT_URL")}
    server = None
    try:
        if url is None:
            from moto.server import ThreadedMotoServer

            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            _linear_moto_kinesis()
            _cheap_moto_sqs_sends()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            os.environ.update(FAKE_CREDENTIALS)
        else:
            os.environ.setdefault("AWS_DEFAULT_REGION", FAKE_CREDENTIALS["AWS_DEFAULT_REGION"])
            host = urlparse(url).hostname or ""
            if host in ("127.0.0.1", "localhost", "::1") and not _has_credentials():
                # A local emulator accepts any credentials; a real endpoint gets the chain's.
                os.environ.update(FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = url
        from tidegate.aws import reset_clients

        reset_clients()
        yield url
    finally:
        if server is not None:
            server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        from tidegate.aws import reset_clients

        reset_clients()
