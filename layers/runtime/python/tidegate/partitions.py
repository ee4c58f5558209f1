"""Which source partitions exist, so a silent one holds the watermark back until idle."""

from __future__ import annotations

import time
from typing import Any

from tidegate.aws import client

_REFRESH_S = 60.0


class KinesisPartitions:
    """Open shards of a stream (ListShards), cached for a minute; resharding shows up then."""

    def __init__(self, stream: str | None) -> None:
        self.stream = stream
        self._cached: list[str] | None = None
        self._at = 0.0

    def expected(self) -> list[str]:
        if not self.stream:
            return []
        if self._cached is None or time.monotonic() - self._at > _REFRESH_S:
            self._cached = self._list()
            self._at = time.monotonic()
        return self._cached

    def _list(self) -> list[str]:
        stream = self.stream or ""
        arg = {"StreamARN": stream} if stream.startswith("arn:") else {
            "StreamName": self.stream
        }
        shards: list[str] = []
        kwargs: dict[str, Any] = dict(arg)
        while True:
            out = client("kinesis").list_shards(**kwargs)
            shards += [
                s["ShardId"]
                for s in out.get("Shards", [])
                if "EndingSequenceNumber" not in s.get("SequenceNumberRange", {})
            ]
            token = out.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}


class StaticPartitions:
    """A fixed list (tests, and sources whose partitions are configured)."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = list(names or [])

    def expected(self) -> list[str]:
        return self.names
