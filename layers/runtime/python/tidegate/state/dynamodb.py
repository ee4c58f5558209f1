"""The state store on DynamoDB (the StateStore protocol, state/store.py).

Every expression string of the state table lives here. Every write is conditional; the
comment on each says which race the condition prevents. A failed condition becomes a
domain error (`ConditionFailedError`, `TransactionConflictError`), never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tidegate.aws import client
from tidegate.errors import ConditionFailedError, TransactionConflictError
from tidegate.state import keys
from tidegate.state.store import CLOSING, EMITTED, PENDING, PUBLISHED, Item
from tidegate.topology import OPEN_INDEX, OPEN_PK, OPEN_SK, PK, SK, TTL_ATTRIBUTE

_BATCH_GET_LIMIT = 100
_CONDITIONAL_CHECK_FAILED = "ConditionalCheckFailedException"
_TRANSACTION_CANCELED = "TransactionCanceledException"


def _codec() -> tuple[Any, Any, type[Exception]]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from botocore.exceptions import ClientError

    return TypeSerializer(), TypeDeserializer(), ClientError


class DynamoStore:
    """The state table of one stage; the client is made on first use (not at cold start)."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._client = dynamodb
        self._ser, self._de, self._client_error = _codec()

    @property
    def db(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    # -- (de)serialisation -------------------------------------------------------------
    def _to_item(self, item: Item) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in item.items() if v is not None}

    def _from_item(self, item: dict[str, Any]) -> Item:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in values.items()}

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    # -- reads ---------------------------------------------------------------------------
    def get(self, pk: str, sk: str) -> Item | None:
        out = self.db.get_item(TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True)
        item = out.get("Item")
        return self._from_item(item) if item else None

    def batch_get(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Strongly consistent reads of many items; unprocessed keys are retried."""
        found: dict[tuple[str, str], Item] = {}
        unique = list(dict.fromkeys(pairs))
        for i in range(0, len(unique), _BATCH_GET_LIMIT):
            request = {
                self.table: {
                    "Keys": [self._key(pk, sk) for pk, sk in unique[i : i + _BATCH_GET_LIMIT]],
                    "ConsistentRead": True,
                }
            }
            while request:
                out = self.db.batch_get_item(RequestItems=request)
                for raw in out.get("Responses", {}).get(self.table, []):
                    item = self._from_item(raw)
                    found[(item[PK], item[SK])] = item
                request = out.get("UnprocessedKeys") or {}
        return found

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[Item]:
        return list(
            self._paginate(
                "query",
                TableName=self.table,
                KeyConditionExpression="#pk = :pk AND #sk BETWEEN :a AND :b",
                ExpressionAttributeNames={"#pk": PK, "#sk": SK},
                ExpressionAttributeValues=self._values({":pk": pk, ":a": sk_from, ":b": sk_to}),
                ConsistentRead=True,
            )
        )

    def query_partition(self, pk: str) -> list[Item]:
        return list(
            self._paginate(
                "query",
                TableName=self.table,
                KeyConditionExpression="#pk = :pk",
                ExpressionAttributeNames={"#pk": PK},
                ExpressionAttributeValues=self._values({":pk": pk}),
                ConsistentRead=True,
            )
        )

    def query_open(self, index_pk: str, up_to: int) -> Iterator[Item]:
        return self._paginate("query", **self._open_query(index_pk, up_to))

    def count_open(self, index_pk: str, up_to: int, limit: int) -> int:
        # A COUNT query reads, and is billed for, the entries it counts: stop at `limit`.
        kwargs = self._open_query(index_pk, up_to)
        kwargs["Select"] = "COUNT"
        counted = 0
        while counted < limit:
            out = self.db.query(Limit=limit - counted, **kwargs)
            counted += int(out.get("Count", 0))
            if not out.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return counted

    def _open_query(self, index_pk: str, up_to: int) -> dict[str, Any]:
        return dict(
            TableName=self.table,
            IndexName=OPEN_INDEX,
            KeyConditionExpression="#opk = :p AND #osk <= :w",
            ExpressionAttributeNames={"#opk": OPEN_PK, "#osk": OPEN_SK},
            ExpressionAttributeValues=self._values({":p": index_pk, ":w": up_to}),
        )

    def _paginate(self, op: str, **kwargs: Any) -> Iterator[Item]:
        while True:
            out = getattr(self.db, op)(**kwargs)
            for raw in out.get("Items", []):
                yield self._from_item(raw)
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # -- ingest --------------------------------------------------------------------------
    def write_group(self, item: Item, expected_version: int | None) -> None:
        # Prevents lost updates between two writers of one item: a racing ingest after a
        # reshard, or the closer freezing a window's snapshot between our read and write.
        kwargs: dict[str, Any] = {"TableName": self.table, "Item": self._to_item(item)}
        if expected_version is None:
            kwargs["ConditionExpression"] = "attribute_not_exists(#pk)"
            kwargs["ExpressionAttributeNames"] = {"#pk": PK}
        else:
            kwargs["ConditionExpression"] = "#ver = :v"
            kwargs["ExpressionAttributeNames"] = {"#ver": "ver"}
            kwargs["ExpressionAttributeValues"] = self._values({":v": expected_version})
        try:
            self.db.put_item(**kwargs)
        except self._client_error as exc:
            lost = self._condition_failed(exc, f"{item[PK]} {item[SK]}: written since read")
            if lost is None:
                raise
            raise lost from exc

    # -- watermarks ----------------------------------------------------------------------
    def advance_partition_watermark(
        self, pk: str, sk: str, watermark: int, max_event_ms: int, now_ms: int,
        position: str | None,
    ) -> None:
        values: dict[str, Any] = {":wm": watermark, ":mt": max_event_ms, ":now": now_ms}
        expression = "SET wm = :wm, max_t = :mt, last_seen = :now"
        # A delayed or retried batch never moves the watermark (or the read position) back.
        condition = "(attribute_not_exists(wm) OR wm <= :wm)"
        if position is not None:
            expression += ", pos = :pos"
            condition += " AND (attribute_not_exists(pos) OR pos <= :pos)"
            values[":pos"] = position
        self._update(pk, sk, expression + " REMOVE pending", condition, values=values)

    def hold_partition_watermark(self, pk: str, sk: str, pending_ms: int, now_ms: int) -> None:
        # Two failed attempts of one batch: the later pending time is kept, never lowered.
        self._update(
            pk, sk, "SET pending = :t, last_seen = :now",
            "attribute_not_exists(pending) OR pending < :t",
            values={":t": pending_ms, ":now": now_ms},
        )

    def touch_partition(
        self, pk: str, sk: str, now_ms: int, clear_pending: bool, position: str | None = None
    ) -> None:
        remove = " REMOVE pending" if clear_pending else ""
        if position is None:
            # Liveness only: the latest writer's time is as good as any.
            self._update(pk, sk, "SET last_seen = :now" + remove, None, values={":now": now_ms})
            return
        # The read position only moves forward: a redelivered older batch leaves it.
        self._update(
            pk, sk, "SET last_seen = :now, pos = :pos" + remove,
            "attribute_not_exists(pos) OR pos <= :pos",
            values={":now": now_ms, ":pos": position},
        )

    def record_position(self, pk: str, sk: str, position: str) -> None:
        # The read position only moves forward.
        self._update(
            pk, sk, "SET pos = :pos", "attribute_not_exists(pos) OR pos < :pos",
            values={":pos": position},
        )

    def advance_pipeline_watermark(self, pk: str, sk: str, watermark: int) -> None:
        # Two closers storing at once: the pipeline watermark never moves back.
        self._update(
            pk, sk, "SET wm = :wm", "attribute_not_exists(wm) OR wm < :wm",
            values={":wm": watermark},
        )

    # -- pane windows --------------------------------------------------------------------
    def freeze_pane(
        self, pk: str, sk: str, window_start: int, unread: bool = False
    ) -> Item | None:
        # Only the first freeze applies: a later one would add events that arrived after
        # the window was final (closers racing). Bumping `ver` makes an in-flight ingest
        # write of the pane fail its version condition and re-read.
        acc_attr, n_attr = keys.snapshot_attrs(window_start)
        condition = "attribute_exists(#pk) AND attribute_not_exists(#a)"
        values: dict[str, Any] = {":one": 1}
        if unread:
            # The test the claim applies to a pane it has read: the pane did not begin
            # after the window and is not past it.
            condition += " AND first_ws <= :ws AND next_ws <= :ws"
            values[":ws"] = window_start
        try:
            return self._update(
                pk, sk, "SET #a = acc, #n = n, ver = ver + :one", condition,
                names={"#a": acc_attr, "#n": n_attr, "#pk": PK}, values=values,
                return_new=True,
            )
        except ConditionFailedError as lost:
            return lost.current  # the pane as it stands (None: no such item)

    def move_pane_on(
        self, pk: str, sk: str, window_start: int, next_window: int, released: list[int],
        next_check_at: int | None, expire_at: int,
    ) -> None:
        names: dict[str, str] = {}
        removes: list[str] = []
        for i, ws in enumerate(released):
            names[f"#a{i}"], names[f"#n{i}"] = keys.snapshot_attrs(ws)
            removes += [f"#a{i}", f"#n{i}"]
        values: dict[str, Any] = {":next": next_window, ":ws": window_start, ":one": 1}
        sets = ["next_ws = :next", "ver = ver + :one"]
        if next_check_at is None:
            removes += [OPEN_PK, OPEN_SK]
            sets.append(f"{TTL_ATTRIBUTE} = :exp")
            values[":exp"] = expire_at
        else:
            sets.append(f"{OPEN_SK} = :close")
            values[":close"] = next_check_at
        expression = "SET " + ", ".join(sets)
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        # Never moves a pane backwards: a racing closer may have finished it already.
        self._update(pk, sk, expression, "next_ws <= :ws", names=names, values=values)

    # -- window results ------------------------------------------------------------------
    def create_once(self, item: Item) -> None:
        # Two closers racing on one window: the first result written wins, both publish it.
        try:
            self.db.put_item(
                TableName=self.table,
                Item=self._to_item(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client_error as exc:
            lost = self._condition_failed(exc, f"{item[PK]} {item[SK]}: exists already")
            if lost is None:
                raise
            if lost.current is None:
                lost.current = self.get(item[PK], item[SK])
            raise lost from exc

    def claim_next_version(
        self, pk: str, sk: str, state: str, result_json: str, n: int, version: int
    ) -> None:
        # Only the closer that read version N (published) may write version N + 1.
        self._update(
            pk, sk, "SET #st = :st, result_json = :rj, n = :n, version = :v",
            "#st = :published AND version = :prev",
            names={"#st": "state"},
            values={":st": state, ":rj": result_json, ":n": n, ":v": version,
                    ":published": PUBLISHED, ":prev": version - 1},
        )

    def mark_emitted(self, pk: str, sk: str, expire_at: int) -> None:
        # A racing closer may have marked it already.
        self._update(
            pk, sk, f"SET #st = :emitted, {TTL_ATTRIBUTE} = :exp REMOVE {OPEN_PK}, {OPEN_SK}",
            "#st = :closing",
            names={"#st": "state"},
            values={":emitted": EMITTED, ":closing": CLOSING, ":exp": expire_at},
        )

    def mark_published(self, pk: str, sk: str, version: int) -> None:
        # A newer version may be on its way: only the version published is marked.
        self._update(
            pk, sk, f"SET #st = :published REMOVE {OPEN_PK}, {OPEN_SK}",
            "#st = :pending AND version = :v",
            names={"#st": "state"},
            values={":published": PUBLISHED, ":pending": PENDING, ":v": version},
        )

    # -- sessions ------------------------------------------------------------------------
    def close_sessions(
        self, pk: str, sk: str, expected_version: int, results: list[Item],
        remaining: list[dict[str, Any]], remaining_n: int, next_check_at: int | None,
    ) -> None:
        # A result item is written once; its bytes are what every run publishes.
        operations: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": self._to_item(result),
                     "ConditionExpression": "attribute_not_exists(#pk)",
                     "ExpressionAttributeNames": {"#pk": PK}}}
            for result in results
        ]
        values: dict[str, Any] = {
            ":rest": remaining, ":n": remaining_n, ":v": expected_version, ":one": 1,
        }
        if next_check_at is None:
            expression = (
                f"SET sessions = :rest, n = :n, ver = ver + :one REMOVE {OPEN_PK}, {OPEN_SK}"
            )
        else:
            expression = f"SET sessions = :rest, n = :n, ver = ver + :one, {OPEN_SK} = :next"
            values[":next"] = next_check_at
        # The version condition: an ingest that merged new events since our read wins,
        # and the closer decides again on what it wrote.
        operations.append({"Update": {
            "TableName": self.table, "Key": self._key(pk, sk), "UpdateExpression": expression,
            "ConditionExpression": "ver = :v", "ExpressionAttributeValues": self._values(values),
        }})
        self._transact(operations, f"{pk}: sessions changed while closing")

    # -- mini-batch bundles --------------------------------------------------------------
    def write_bundles(
        self, bundles: list[Item], meta_pk: str, partition_sk: str, through: str, top: int,
        now_ms: int, panes_sk: str, panes: list[int],
    ) -> None:
        operations: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": self._to_item(bundle),
                     "ConditionExpression": "attribute_not_exists(#pk)",
                     "ExpressionAttributeNames": {"#pk": PK}}}
            for bundle in bundles
        ]
        operations.append({"Update": {
            "TableName": self.table, "Key": self._key(meta_pk, partition_sk),
            "UpdateExpression": "SET pos = :pos, ftop = :top, last_seen = :now",
            "ConditionExpression": "attribute_not_exists(pos) OR pos < :pos",
            "ExpressionAttributeValues": self._values(
                {":pos": through, ":top": top, ":now": now_ms}),
        }})
        if panes:
            operations.append({"Update": {
                "TableName": self.table, "Key": self._key(meta_pk, panes_sk),
                "UpdateExpression": "ADD panes :p",
                "ExpressionAttributeValues": self._values({":p": set(panes)}),
            }})
        self._transact(operations, f"{meta_pk} {partition_sk}: flushed through {through} already")

    def advance_bundle_progress(
        self, pk: str, sk: str, closed_through: int | None, expected: int | None,
        done: list[int], early: int | None = None, seen: dict[str, str] | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        sets = []
        for name, value in (("closed", closed_through), ("early", early), ("seen", seen)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        expression = "SET " + ", ".join(sets) if sets else ""
        if done:
            expression += " DELETE panes :done"
            values[":done"] = set(done)
        if not expression:
            return
        if expected is None:
            condition = "attribute_not_exists(closed)"
        else:
            condition = "closed = :e"
            values[":e"] = expected
        self._update(pk, sk, expression.strip(), condition, values=values)

    def keep_until(self, pk: str, sk: str, expire_at: int) -> None:
        try:
            self._update(
                pk, sk, f"SET {TTL_ATTRIBUTE} = :t",
                f"attribute_exists(#pk) AND (attribute_not_exists({TTL_ATTRIBUTE})"
                f" OR {TTL_ATTRIBUTE} < :t)",
                names={"#pk": PK}, values={":t": expire_at},
            )
        except ConditionFailedError:
            pass  # gone, or kept already by a racing closer

    # -- state versions ------------------------------------------------------------------
    def switch_active_version(
        self, pk: str, sk: str, from_version: int, to_version: int,
        handover: dict[str, Any], now_ms: int, watermark_pk: str, watermark_sk: str,
        handover_watermark: int | None,
    ) -> None:
        # The outgoing version's watermark is checked in the same transaction: had its
        # closer moved it since it was read, it might already publish windows past the
        # handover.
        check: dict[str, Any] = {"TableName": self.table,
                                 "Key": self._key(watermark_pk, watermark_sk)}
        if handover_watermark is None:
            check["ConditionExpression"] = "attribute_not_exists(wm)"
        else:
            check["ConditionExpression"] = "wm = :h"
            check["ExpressionAttributeValues"] = self._values({":h": handover_watermark})
        operations = [
            {"ConditionCheck": check},
            # Two operators switching at once: only the one that read `active` wins.
            {"Update": {
                "TableName": self.table, "Key": self._key(pk, sk),
                "UpdateExpression": "SET active = :new, handover = :h, switched_at = :now",
                "ConditionExpression": "active = :old",
                "ExpressionAttributeValues": self._values(
                    {":new": to_version, ":h": handover, ":now": now_ms, ":old": from_version}
                ),
            }},
        ]
        self._transact(operations, f"{pk}: active version or its watermark moved")

    def expire_items(self, pk_prefix: str, pk: str, expire_at: int) -> int:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "begins_with(#pk, :a) OR #pk = :m",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": self._values({":a": pk_prefix, ":m": pk}),
            "ProjectionExpression": "#pk, #sk",
        }
        count = 0
        while True:
            page = self.db.scan(**kwargs)
            for raw in page.get("Items", []):
                try:
                    self._update(
                        raw[PK]["S"], raw[SK]["S"], f"SET {TTL_ATTRIBUTE} = :t",
                        # Only lowers: state the closer already released expires on its
                        # own time; an item deleted since the scan is not recreated.
                        f"attribute_exists(#pk) AND (attribute_not_exists({TTL_ATTRIBUTE})"
                        f" OR {TTL_ATTRIBUTE} > :t)",
                        names={"#pk": PK}, values={":t": expire_at},
                    )
                    count += 1
                except ConditionFailedError:
                    pass
            if not page.get("LastEvaluatedKey"):
                return count
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- the calls -----------------------------------------------------------------------
    def _update(
        self, pk: str, sk: str, expression: str, condition: str | None,
        names: dict[str, str] | None = None, values: dict[str, Any] | None = None,
        return_new: bool = False,
    ) -> Item | None:
        """Conditional UpdateItem; the new item when `return_new`. A failed condition
        raises ConditionFailedError carrying the item as it stood."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": self._key(pk, sk),
            "UpdateExpression": expression,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = self._values(values)
        if return_new:
            kwargs["ReturnValues"] = "ALL_NEW"
        try:
            out = self.db.update_item(**kwargs)
        except self._client_error as exc:
            lost = self._condition_failed(exc, f"{pk} {sk}: condition not met")
            if lost is None:
                raise
            raise lost from exc
        attrs = out.get("Attributes")
        return self._from_item(attrs) if attrs else None

    def _condition_failed(self, exc: Exception, message: str) -> ConditionFailedError | None:
        """The domain error for a failed condition; None for any other error."""
        response = getattr(exc, "response", {})
        if response.get("Error", {}).get("Code") != _CONDITIONAL_CHECK_FAILED:
            return None
        old = response.get("Item")
        return ConditionFailedError(message, self._from_item(old) if old else None)

    def _transact(self, operations: list[dict[str, Any]], message: str) -> None:
        """All or nothing; TransactionConflictError when a condition failed."""
        try:
            self.db.transact_write_items(TransactItems=operations)
        except self._client_error as exc:
            response = getattr(exc, "response", {})
            if response.get("Error", {}).get("Code") != _TRANSACTION_CANCELED:
                raise
            reasons = response.get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                raise TransactionConflictError(message) from exc
            raise


__all__ = ["DynamoStore"]
