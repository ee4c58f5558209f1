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
