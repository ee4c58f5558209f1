"""Speed-ups for the embedded moto server: moto answers several calls in O(size of the
table, shard or queue), which a million-event local run cannot afford. Each replaces one
lookup with a direct one and answers exactly as moto does (tests/unit/test_embedded_moto.py).
Dev tooling only: nothing that ships to Lambda imports this."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
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
    cached_moto_modules()
    cached_action_names()
    cached_update_expressions()
    cached_response_keys()
    direct_json_results()
    narrow_index_projections()


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


def cached_moto_modules() -> None:
    """moto's server lists its own package directory (a listdir and an isdir per service)
    on every request, under a lock, to learn that a host is not a service name. The
    directory does not change while a server runs: it is listed once."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "tidegate_patched", False):
        return
    listing = backends.list_of_moto_modules

    @functools.cache
    def modules() -> tuple[str, ...]:
        return tuple(listing())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules()

    list_of_moto_modules.tidegate_patched = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


def cached_action_names() -> None:
    """moto finds whether a request's action is a method of its response class with
    inspect.getmembers on every request; a class's methods do not change."""
    from moto.core import responses

    if getattr(responses.method_names_from_class, "tidegate_patched", False):
        return
    names = functools.cache(responses.method_names_from_class)

    def method_names_from_class(clazz: object) -> list[str]:
        return names(clazz)

    method_names_from_class.tidegate_patched = True  # type: ignore[attr-defined]
    responses.method_names_from_class = method_names_from_class  # type: ignore[assignment]


def cached_update_expressions() -> None:
    """moto parses an UpdateExpression twice per UpdateItem (the handler and the backend),
    though a closer or an ingest sends the same few expressions over and over. The parsed
    tree is only read: the validator works on its own deep copy of it. Invalid expressions
    raise as before (an exception is not cached)."""
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser, "_tidegate_cached", False):
        return
    make = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]

    @functools.lru_cache(maxsize=4096)
    def parsed(expression: str) -> object:
        return make(UpdateExpressionParser, expression)

    def cached_make(cls: type, expression_str: str) -> object:
        return parsed(expression_str)

    UpdateExpressionParser.make = classmethod(cached_make)  # type: ignore[method-assign,assignment]
    UpdateExpressionParser._tidegate_cached = True  # type: ignore[attr-defined]


def cached_response_keys() -> None:
    """moto's response serializer finds each member of each response structure (every
    attribute of every item returned) by asking six alias rules for candidate keys, for
    every value. For a plain dict or list the candidates depend only on the key, the shape
    and its parent shape, which botocore keeps for the life of the model: computed once
    for each, then looked up in the same order."""
    from moto.core.serialize import XFormedAttributePicker

    if getattr(XFormedAttributePicker, "_tidegate_cached", False):
        return
    possible_keys = XFormedAttributePicker.get_possible_keys
    cache: dict[tuple[object, ...], tuple[str, ...]] = {}

    def get_possible_keys(self: XFormedAttributePicker, context: Any) -> Iterator[str]:
        if type(context.obj) not in (dict, list) or self.alias_providers is not _DEFAULTS:
            return possible_keys(self, context)
        shape = context.shape
        key = (type(context.obj), context.key, shape, getattr(shape, "parent", None))
        found = cache.get(key)
        if found is None:
            found = cache[key] = tuple(possible_keys(self, context))
        return iter(found)

    from moto.core.serialize import DEFAULT_ALIAS_PROVIDERS as _DEFAULTS

    get_possible_keys.original = possible_keys  # type: ignore[attr-defined]
    XFormedAttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign,assignment]
    XFormedAttributePicker._tidegate_cached = True  # type: ignore[attr-defined]


class _NotPlainError(Exception):
    """A value the direct JSON walk does not handle: moto's own serializer takes it."""


def direct_json_results() -> None:
    """moto serialises every response value by value: each member of each structure (each
    attribute of each item a Query returns) goes through alias lookups, a context object and
    a method lookup. A 1 MB Query page took seconds, and 8 closer workers paging the open
    index at once hit the client's 60 s read timeout. For the JSON protocol, a result made
    of plain dicts and lists is walked here with the same rules (members in shape order,
    found under the same candidate keys, None members left out); every scalar still goes
    through moto's own method, and anything else (a model object, a document, a response
    transformer) is serialised by moto as before."""
    from moto.core.serialize import (
        DEFAULT_ALIAS_PROVIDERS,
        AttributePickerContext,
        JSONSerializer,
        XFormedAttributePicker,
    )
    from moto.core.utils import MISSING, get_value

    if getattr(JSONSerializer, "_tidegate_direct", False):
        return
    moto_serialize_result = JSONSerializer._serialize_result
    candidates: dict[tuple[object, ...], tuple[str, ...]] = {}

    def member_value(ser: JSONSerializer, obj: dict, key: str, shape: Any, parent: Any) -> Any:
        found = candidates.get((key, shape, parent))
        if found is None:
            context = AttributePickerContext(
                obj=obj, key=key, shape=shape, operation_model=ser.operation_model,
                service_model=ser.service_model, key_path="")
            found = candidates[(key, shape, parent)] = tuple(
                ser._value_picker.get_possible_keys(context))
        for candidate in found:
            value = obj.get(candidate, MISSING) if "." not in candidate else get_value(
                obj, candidate, MISSING)
            if value is not MISSING:
                return value
        return None

    def walk(ser: JSONSerializer, value: Any, shape: Any) -> Any:
        kind = shape.type_name
        if kind == "structure":
            if shape.is_document_type:
                return value
            if type(value) is not dict:
                raise _NotPlainError
            out = {}
            for key, member in shape.members.items():
                member.parent = shape  # as moto sets it: an alias rule reads it
                found = member_value(ser, value, key, member, shape)
                if found is not None:
                    out[member.serialization.get("name", key)] = walk(ser, found, member)
            return out
        if kind == "map":
            if type(value) is not dict or "name" in shape.value.serialization:
                raise _NotPlainError
            if any(v is None for v in value.values()):
                raise _NotPlainError
            return {k: walk(ser, v, shape.value) for k, v in value.items()}
        if kind == "list":
            if type(value) is not list or "name" in shape.member.serialization:
                raise _NotPlainError
            if any(v is None for v in value):
                raise _NotPlainError
            return [walk(ser, v, shape.member) for v in value]
        if kind == "string" and type(value) is str:
            return value  # what moto's string method makes of a str: str(value)
        scalar: dict[str, Any] = {}
        ser._serialize(scalar, value, shape, "value")
        if len(scalar) != 1:
            raise _NotPlainError
        return next(iter(scalar.values()))

    def serialize_result(self: JSONSerializer, resp: Any, result: Any) -> Any:
        shape = self.operation_model.output_shape
        picker = self._value_picker
        plain = (
            type(self) is JSONSerializer and type(result) is dict and shape is not None
            and not shape.is_document_type and type(picker) is XFormedAttributePicker
            and picker.alias_providers is DEFAULT_ALIAS_PROVIDERS
            and not picker.response_transformers
        )
        if plain:
            try:
                body = walk(self, result, shape)
            except _NotPlainError:
                pass
            else:
                return self._serialized_result_to_response(resp, result, shape, body)
        return moto_serialize_result(self, resp, result)

    serialize_result.original = moto_serialize_result  # type: ignore[attr-defined]
    JSONSerializer._serialize_result = serialize_result  # type: ignore[method-assign]
    JSONSerializer._tidegate_direct = True  # type: ignore[attr-defined]


def narrow_index_projections() -> None:
    """An index with a KEYS_ONLY or INCLUDE projection: moto converts each returned item
    in full to plain JSON and back to keep a few attributes, for every item of a page (the
    open index keeps 6 of a pane's attributes; 3,000 panes a page). Here the item is first
    cut to those attributes, then projected by moto as before: the same attributes in the
    same order, converted the same way. Names that address a list element fall back."""
    import re

    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import SecondaryIndex

    if getattr(SecondaryIndex, "_tidegate_narrowed", False):
        return
    moto_project = SecondaryIndex.project
    element = re.compile(r"(.+)\[(\d+)\]$")  # moto's find_nested_key reads these differently

    def project(self: SecondaryIndex, item: Item) -> Item:
        kind = (self.projection or {}).get("ProjectionType")
        if kind not in ("KEYS_ONLY", "INCLUDE"):
            return moto_project(self, item)
        names = self.table_key_attrs + [key["AttributeName"] for key in self.schema]
        if kind == "INCLUDE":
            names = names + list(self.projection.get("NonKeyAttributes", []))
        if any(element.match(name) for name in names):
            return moto_project(self, item)
        kept = {name: item.attrs[name] for name in dict.fromkeys(names) if name in item.attrs}
        return Item(item.hash_key, item.range_key, kept).project([[name] for name in names])

    project.original = moto_project  # type: ignore[attr-defined]
    SecondaryIndex.project = project  # type: ignore[method-assign]
    SecondaryIndex._tidegate_narrowed = True  # type: ignore[attr-defined]
