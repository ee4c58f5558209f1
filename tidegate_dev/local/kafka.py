"""Local Kafka for `source.type: msk`: a broker, a producer keyed by aggregation key, and an
MSK event-source-mapping emulator.

The broker is librdkafka's in-process mock cluster (the one confluent-kafka's wheel bundles,
which `"test.mock.num.brokers"` starts), or any broker given with `--kafka-bootstrap`. The mock
cluster is started through librdkafka's mock API (`rd_kafka_mock_cluster_new`,
`rd_kafka_mock_topic_create`) because its CreateTopics cannot be reached from Python: the
mock reports a controller id no broker has, so AdminClient.create_topics times out, and a
topic auto-created on first produce gets the mock's default partition count, not `--shards`.
One mock cluster serves the whole process; every run gets its own topic.

The mapping mirrors the Kinesis emulator (esm.py) and AWS's rules for Kafka:

* Each topic-partition is read in offset order, one batch at a time; a batch holds the records
  of ONE partition (AWS may mix partitions in one event; one per batch keeps the records of a
  batch judged against one watermark, as with Kinesis shards).
* Events are shaped as Lambda shapes `aws:kafka` (or `SelfManagedKafka`) events: records
  grouped under `"<topic>-<partition>"`, base64 key and value, headers as byte-value lists,
  timestamp and timestampType.
* ReportBatchItemFailures: an empty list is success; otherwise each failed partition resumes
  at its LOWEST reported offset and everything after it is redelivered; an identifier that is
  not `{"partition": "<topic>-<n>", "offset": <int in the batch>}` fails the whole batch.
* A handler error retries the whole batch (bisect off by default, as in esm.py).
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import glob
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidegate_dev.local.delivery import BatchDelivery, DeliveryError, Handler, Lane

_LOG_LEVEL = "3"  # errors only: librdkafka logs every closed connection at level 6
_FILL_DEADLINE_S = 30.0
_TIMESTAMP_TYPES = {1: "CREATE_TIME", 2: "LOG_APPEND_TIME"}


# -- brokers ------------------------------------------------------------------------------
class MockCluster:
    """librdkafka's mock cluster, started through the bundled library's mock API."""

    def __init__(self, brokers: int = 1) -> None:
        import confluent_kafka

        libs = os.path.join(os.path.dirname(confluent_kafka.__file__), os.pardir,
                            "confluent_kafka.libs")
        found = sorted(glob.glob(os.path.join(libs, "librdkafka*.so*")))
        if not found:
            raise RuntimeError("confluent-kafka's bundled librdkafka was not found")
        # The same file cimpl loaded, so dlopen hands back the library already in memory.
        lib = ctypes.CDLL(found[0])
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_set.restype = ctypes.c_int
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_size_t]
        lib.rd_kafka_new.restype = ctypes.c_void_p
        lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                                     ctypes.c_size_t]
        lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
        lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
        lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
        lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                   ctypes.c_int, ctypes.c_int]
        lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
        lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
        self._lib = lib
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, len(errstr))
        # The handle only hosts the cluster; it never talks to a broker itself.
        self._handle = lib.rd_kafka_new(0, conf, errstr, len(errstr))
        if not self._handle:
            raise RuntimeError(f"librdkafka: {errstr.value.decode(errors='replace')}")
        self._cluster = lib.rd_kafka_mock_cluster_new(self._handle, brokers)
        if not self._cluster:
            lib.rd_kafka_destroy(self._handle)
            raise RuntimeError("librdkafka could not start a mock cluster")
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()

    def create_topic(self, name: str, partitions: int) -> None:
        err = self._lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if err:
            raise RuntimeError(f"mock cluster: cannot create topic {name!r} (error {err})")

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._lib.rd_kafka_destroy(self._handle)
            self._cluster = self._handle = None


_mock: MockCluster | None = None
_mock_lock = threading.Lock()


def mock_cluster() -> MockCluster:
    """The process's mock cluster, started on first use (about 0.1 s)."""
    global _mock
    with _mock_lock:
        if _mock is None:
            _mock = MockCluster()
            atexit.register(_mock.close)
        return _mock


def create_topic(bootstrap: str | None, name: str, partitions: int) -> str:
    """Create `name` with `partitions` partitions; return the bootstrap servers to use."""
    if bootstrap is None:
        cluster = mock_cluster()
        cluster.create_topic(name, partitions)
        return cluster.bootstrap
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": _LOG_LEVEL})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=-1)],
        operation_timeout=30, request_timeout=30,
    )
    for future in futures.values():
        future.result()
    return bootstrap


def produce(bootstrap: str, topic: str, keys: Sequence[str], values: Sequence[bytes]) -> None:
    """Produce in order, keyed; idempotence keeps the order of a key through retries."""
    from confluent_kafka import Producer

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        # Java clients' partitioner, which MSK producers mostly use.
        "partitioner": "murmur2_random",
        "log_level": _LOG_LEVEL,
    })
    errors: list[Any] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for key, value in zip(keys, values, strict=True):
        while True:
            try:
                producer.produce(topic, value=value, key=key.encode("utf-8"),
                                 on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if left or errors:
        raise RuntimeError(f"producing to {topic}: {left} undelivered, errors {errors[:3]}")


# -- the event source mapping -------------------------------------------------------------
@dataclass
class _Partition(Lane):
    """`name` is "<topic>-<number>", the key Lambda groups records under."""

    number: int = 0
    consumer: Any = None


class KafkaEventSourceMapping(BatchDelivery):
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        handler: Handler,
        batch_size: int = 100,
        function_name: str = "tidegate-ingest",
        max_retries: int = 50,
        region: str = "us-east-1",
        self_managed: bool = False,
        chaos: Any = None,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        # Kafka mappings have no bisect-on-error setting.
        super().__init__(handler, batch_size, function_name, max_retries, False, chaos)
        self.bootstrap = bootstrap
        self.topic = topic
        self.event_source = "SelfManagedKafka" if self_managed else "aws:kafka"
        self.cluster_arn = (
            f"arn:aws:kafka:{region}:123456789012:cluster/tidegate-local/{uuid.uuid4()}-1"
        )
        self._closed = False
        group = f"tidegate-esm-{uuid.uuid4().hex[:8]}"
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                          "log_level": _LOG_LEVEL})
        try:
            metadata = probe.list_topics(topic, timeout=10).topics[topic]
        finally:
            probe.close()
        if metadata.error is not None:
            raise RuntimeError(f"topic {topic}: {metadata.error}")
        self.partitions: list[_Partition] = []
        for number in sorted(metadata.partitions):
            # One consumer per partition: each is read on its own, in offset order; offsets
            # are checkpointed here (the buffer), as the mapping does, not in the group.
            consumer = Consumer({
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 10,
                "log_level": _LOG_LEVEL,
            })
            consumer.assign([TopicPartition(topic, number, OFFSET_BEGINNING)])
            self.partitions.append(
                _Partition(f"{topic}-{number}", number=number, consumer=consumer)
            )
        self.lanes = self.partitions

    # -- reading -------------------------------------------------------------------------
    def _fill(self, part: _Partition) -> None:
        from confluent_kafka import KafkaError, KafkaException

        deadline = time.monotonic() + _FILL_DEADLINE_S
        while len(part.buffer) < self.batch_size:
            # consume() waits out its timeout unless it gets num_messages, so poll briefly
            # until the end-of-partition event; once there, take only what is fetched already.
            messages = part.consumer.consume(
                num_messages=max(1, self.batch_size * 4), timeout=0 if part.caught_up else 0.02
            )
            if not messages:
                if part.caught_up:
                    return
                if time.monotonic() > deadline:
                    raise DeliveryError(f"{part.name}: no records and no end of partition")
                continue
            for message in messages:
                error = message.error()
                if error is None:
                    part.buffer.append(self._record(message))
                    part.caught_up = False
                elif error.code() == KafkaError._PARTITION_EOF:
                    part.caught_up = True
                else:
                    raise KafkaException(error)
            if part.caught_up:
                return

    def _record(self, message: Any) -> dict[str, Any]:
        kind, timestamp = message.timestamp()
        key = message.key()
        record: dict[str, Any] = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": timestamp,
            "timestampType": _TIMESTAMP_TYPES.get(kind, "NO_TIMESTAMP_TYPE"),
            "value": base64.b64encode(message.value() or b"").decode("ascii"),
            "headers": [{name: list(value or b"")} for name, value in message.headers() or []],
        }
        if key is not None:
            record["key"] = base64.b64encode(key).decode("ascii")
        return record

    def pending(self) -> bool:
        """True while any partition has records not yet successfully processed."""
        if self._closed:
            return False
        if super().pending():
            return True
        # A bounded local run is over: let go of the broker connections.
        for part in self.partitions:
            part.consumer.close()
        self._closed = True
        return False

    # -- delivering ----------------------------------------------------------------------
    def _event(self, part: _Partition, records: list[dict[str, Any]]) -> dict[str, Any]:
        event: dict[str, Any] = {"eventSource": self.event_source}
        if self.event_source == "aws:kafka":
            event["eventSourceArn"] = self.cluster_arn
        event["bootstrapServers"] = self.bootstrap
        event["records"] = {part.name: records}
        return event

    def _failure_index(
        self, lane: _Partition, batch: list[dict[str, Any]], identifiers: list[Any]
    ) -> int | None:
        index = {r["offset"]: i for i, r in enumerate(batch)}
        if not identifiers or not all(self._valid(i, lane, index) for i in identifiers):
            return None
        return min(index[i["offset"]] for i in identifiers)

    def _position(self, record: dict[str, Any]) -> str:
        return f"offset {record['offset']}"

    @staticmethod
    def _valid(identifier: Any, part: _Partition, index: dict[int, int]) -> bool:
        return (
            isinstance(identifier, dict)
            and identifier.get("partition") == part.name
            and isinstance(identifier.get("offset"), int)
            and not isinstance(identifier.get("offset"), bool)
            and identifier["offset"] in index
        )


def open_topic_feed(
    topic_base: str,
    partitions: int,
    keys: Sequence[str],
    values: Sequence[bytes],
    handler: Handler,
    batch_size: int,
    chaos: Any = None,
    kafka_bootstrap: str | None = None,
) -> KafkaEventSourceMapping:
    """A fresh topic (a broker may hold earlier runs), the values produced to it in order,
    and the mapping that delivers them."""
    topic = f"{topic_base}-{uuid.uuid4().hex[:8]}"
    bootstrap = create_topic(kafka_bootstrap, topic, partitions)
    produce(bootstrap, topic, keys, values)
    return KafkaEventSourceMapping(bootstrap, topic, handler, batch_size=batch_size, chaos=chaos)
