"""Speed-ups for the embedded moto server: moto answers several calls in O(size of the
table, shard or queue), which a million-event local run cannot afford. Each replaces one
lookup with a direct one and answers exactly as moto does (tests/unit/test_embedded_moto.py).
Dev tooling only: nothing that ships to Lambda imports this."""

from __future__ import annotations

import threading
from typing import Any


def linear_kinesis() -> None:
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
    if not getattr(Shard, "_tidegate_locked", False):
        # moto numbers a record "newest + 1" unlocked: two requests at once (the closer's
        # worker threads publishing) get one number, and one record silently replaces the
        # other. One lock around it: put_record is a dictionary insert.
        put_record = Shard.put_record
        lock = threading.Lock()

        def locked_put_record(self: Shard, *args: object, **kwargs: object) -> str:
            with lock:
                return put_record(self, *args, **kwargs)  # type: ignore[arg-type]

        Shard.put_record = locked_put_record  # type: ignore[method-assign]
        Shard._tidegate_locked = True  # type: ignore[attr-defined]


def indexed_dynamodb_queries() -> None:
    """moto answers every Query by sorting the whole table and testing each item: a query
    for one key or one open-window index partition costs O(table), so closing 100,000
    windows would take hours. Here a query's candidates are first narrowed to the items
    of the queried partition (the same test moto applies next), then moto runs as before:
    same results, same order, same paging."""
    from moto.dynamodb.models.table import Table

    if getattr(Table, "_tidegate_indexed", False):
        return
    scope = threading.local()  # moto serves each request on its own thread
    all_items, query = Table.all_items, Table.query

    def candidates(self: Table) -> list:
        wanted = getattr(scope, "wanted", None)
        if wanted is None or not self.range_key_attr:
            return all_items(self)
        attribute, value = wanted
        if attribute is None:  # the table's own hash key
            items = list(self.items.get(value, {}).values())
        else:
            # list() copies under the GIL: other threads may be writing the table meanwhile.
            items = [
                item for hash_set in list(self.items.values())
                for item in list(hash_set.values())
                if (found := item.attrs.get(attribute)) is not None and found == value
            ]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key))

    def narrowed_query(self: Table, hash_key: object, *args: object, **kwargs: object) -> object:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        conditions = kwargs.get("hash_key_conditions")
        if index_name:
            one = isinstance(conditions, list) and len(conditions) == 1
            scope.wanted = conditions[0] if one else None  # type: ignore[index]
        else:
            scope.wanted = None if hash_key is None else (None, hash_key)
        try:
            return query(self, hash_key, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            scope.wanted = None

    Table.all_items = candidates  # type: ignore[method-assign]
    Table.query = narrowed_query  # type: ignore[method-assign]
    Table._tidegate_indexed = True  # type: ignore[attr-defined]


def cheap_sqs_sends() -> None:
    """moto's SendMessage reads the queue's whole attribute map to learn one flag
    (ContentBasedDeduplication), and building that map counts every message's visibility
    three times: each send costs O(queue length). A run that routes tens of thousands of
    records late or dead spent 95 % of its time there (py-spy, on the million-event soak).
    While a message is being sent, the map holds only that flag; everything else (e.g.
    GetQueueAttributes) still gets moto's own."""
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


def apply() -> None:
    """Install every speed-up (each only once per process)."""
    linear_kinesis()
    indexed_dynamodb_queries()
    cheap_sqs_sends()
    cheap_sqs_receives()


def cheap_sqs_receives() -> None:
    """Reading a queue back costs O(queue length) several times per message in moto: each
    message received re-reads the retention period through the whole attribute map (which
    counts every message's visibility three times, twice), the visible-message list calls the
    clock twice per message, and each deleted receipt handle is searched for, then the whole
    list rebuilt. Draining 10,000 dead letters at the end of the million-event soak took
    over 40 minutes. Here: the retention period is read from the queue, the visible list
    reads the clock once, and a DeleteMessageBatch finds its messages in one pass and
    rebuilds the list once; the answers are moto's."""
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.models import Message, Queue, SQSBackend

    if getattr(SQSBackend.delete_message_batch, "tidegate_patched", False):
        return

    def retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
        retention_s = self.get_queue(queue_name).message_retention_period
        return retention_s + message.sent_timestamp / 1000 > unix_time()

    def visible_messages(self: Queue) -> list[Message]:
        now = unix_time_millis()
        return [m for m in self._messages if m.visible_at < now and m.delayed_until <= now]

    def delete_message_batch(
        self: SQSBackend, queue_name: str, receipts: list[dict[str, Any]]
    ) -> tuple[list[str], list[dict[str, str]]]:
        queue = self.get_queue(queue_name)
        wanted = {r["ReceiptHandle"] for r in receipts} - queue.deleted_messages
        holders: dict[str, Message] = {}
        if wanted:
            for message in queue._messages:
                for handle in message.all_receipt_handles:
                    if handle in wanted:
                        holders[handle] = message
        success: list[str] = []
        errors: list[dict[str, str]] = []
        for receipt in receipts:
            handle = receipt["ReceiptHandle"]
            if handle in queue.deleted_messages or handle in holders:
                success.append(receipt["Id"])
            else:
                errors.append({
                    "Id": receipt["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                    "Message": f'The input receipt handle "{handle}" is not a valid receipt '
                               "handle.",
                })
        gone = {id(m): m for m in holders.values()}
        if gone:
            for message in gone.values():
                queue.pending_messages.discard(message)
                queue.deleted_messages.update(message.all_receipt_handles)
            queue._messages = [m for m in queue._messages if id(m) not in gone]
        return success, errors

    delete_message_batch.tidegate_patched = True  # type: ignore[attr-defined]
    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[method-assign]
    Queue.messages = property(visible_messages)  # type: ignore[method-assign,assignment]
    SQSBackend.delete_message_batch = delete_message_batch  # type: ignore[method-assign]
