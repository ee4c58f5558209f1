"""The state store on DynamoDB.

Every write is conditional; the comment on each says which race the condition prevents.
A failed condition becomes a domain answer (False / `StaleItem`), never a silent overwrite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tidegate.aws import client, error_code
from tidegate.state import keys
from tidegate.topology import OPEN_INDEX, OPEN_PK, OPEN_SK, PK, SK, TTL_ATTRIBUTE

_BATCH_GET_LIMIT = 100


def _codec() -> tuple[Any, Any]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


class DynamoStore:
    """Primitives over one state table; the ingest and closer own the logic."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._client = dynamodb
        self._ser, self._de = _codec()

    @property
    def db(self) -> Any:
        if self._client is None:
            self._client = client("dynamodb")
        return self._client

    # -- (de)serialisation -------------------------------------------------------------
    def _to_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in item.items() if v is not None}

    def _from_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: self._de.deserialize(v) for k, v in item.items()}

    def _values(self, values: dict[str, Any]) -> dict[str, Any]:
        return {k: self._ser.serialize(v) for k, v in values.items()}

    @staticmethod
    def _key(pk: str, sk: str) -> dict[str, Any]:
        return {PK: {"S": pk}, SK: {"S": sk}}

    # -- reads ---------------------------------------------------------------------------
    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        out = self.db.get_item(TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True)
        item = out.get("Item")
        return self._from_item(item) if item else None

    def batch_get(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Strongly consistent reads of many items; unprocessed keys are retried."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
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

    def query_range(self, pk: str, sk_from: str, sk_to: str) -> list[dict[str, Any]]:
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

    def query_partition(self, pk: str) -> list[dict[str, Any]]:
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

    def query_open(self, index_pk: str, up_to: int) -> Iterator[dict[str, Any]]:
        """Open panes of one index partition whose next window closes at or before `up_to`."""
        return self._paginate(
            "query",
            TableName=self.table,
            IndexName=OPEN_INDEX,
            KeyConditionExpression="#opk = :p AND #osk <= :w",
            ExpressionAttributeNames={"#opk": OPEN_PK, "#osk": OPEN_SK},
            ExpressionAttributeValues=self._values({":p": index_pk, ":w": up_to}),
        )

    def count_open(self, index_pk: str, up_to: int, limit: int) -> int:
        """How many panes of one index partition are due, counting no further than `limit`
        (a COUNT query reads, and is billed for, the entries it counts)."""
        kwargs: dict[str, Any] = dict(
            TableName=self.table,
            IndexName=OPEN_INDEX,
            KeyConditionExpression="#opk = :p AND #osk <= :w",
            ExpressionAttributeNames={"#opk": OPEN_PK, "#osk": OPEN_SK},
            ExpressionAttributeValues=self._values({":p": index_pk, ":w": up_to}),
            Select="COUNT",
        )
        counted = 0
        while counted < limit:
            out = self.db.query(Limit=limit - counted, **kwargs)
            counted += int(out.get("Count", 0))
            if not out.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return counted

    def _paginate(self, op: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            out = getattr(self.db, op)(**kwargs)
            for raw in out.get("Items", []):
                yield self._from_item(raw)
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # -- writes --------------------------------------------------------------------------
    def put_versioned(self, item: dict[str, Any], expected_version: int | None) -> bool:
        """Replace an item if nobody wrote it since we read version `expected_version`.

        Prevents lost updates between two writers of one pane (a racing ingest after a
        reshard, or the closer freezing a window's snapshot between our read and write).
        """
        if expected_version is None:
            condition = "attribute_not_exists(#pk)"
            values = None
        else:
            condition = "#ver = :v"
            values = self._values({":v": expected_version})
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Item": self._to_item(item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#pk": PK} if values is None else {"#ver": "ver"},
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        return self._conditional(self.db.put_item, **kwargs)

    def put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Create an item unless it exists; return the existing item when it does.

        Two closers racing on one window: the first result written wins and both publish it.
        """
        try:
            self.db.put_item(
                TableName=self.table,
                Item=self._to_item(item),
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return None
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            return self._from_item(old) if old else self.get(item[PK], item[SK])

    def update(
        self,
        pk: str,
        sk: str,
        expression: str,
        condition: str | None,
        names: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        return_new: bool = False,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Conditional UpdateItem -> (applied, item). The item is the new one when applied
        (if asked), else the current one, so callers can see who won."""
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
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = getattr(exc, "response", {}).get("Item")
            return False, self._from_item(old) if old else None
        attrs = out.get("Attributes")
        return True, self._from_item(attrs) if attrs else None

    # -- transactions ----------------------------------------------------------------------
    def put_op(self, item: dict[str, Any], condition: str, names: dict[str, str]) -> dict:
        return {"Put": {"TableName": self.table, "Item": self._to_item(item),
                        "ConditionExpression": condition, "ExpressionAttributeNames": names}}

    def update_op(
        self, pk: str, sk: str, expression: str, condition: str | None,
        names: dict[str, str] | None = None, values: dict[str, Any] | None = None,
    ) -> dict:
        update: dict[str, Any] = {"TableName": self.table, "Key": self._key(pk, sk),
                                  "UpdateExpression": expression}
        if condition:
            update["ConditionExpression"] = condition
        if names:
            update["ExpressionAttributeNames"] = names
        if values:
            update["ExpressionAttributeValues"] = self._values(values)
        return {"Update": update}

    def check_op(
        self, pk: str, sk: str, condition: str, values: dict[str, Any] | None = None
    ) -> dict:
        check: dict[str, Any] = {"TableName": self.table, "Key": self._key(pk, sk),
                                 "ConditionExpression": condition}
        if values:
            check["ExpressionAttributeValues"] = self._values(values)
        return {"ConditionCheck": check}

    def transact(self, operations: list[dict]) -> bool:
        """All or nothing; False when a condition failed (the caller re-reads and retries)."""
        try:
            self.db.transact_write_items(TransactItems=operations)
            return True
        except Exception as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = getattr(exc, "response", {}).get("CancellationReasons") or []
            if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                return False
            raise

    def _conditional(self, call: Any, **kwargs: Any) -> bool:
        try:
            call(**kwargs)
            return True
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise


__all__ = ["OPEN_PK", "OPEN_SK", "TTL_ATTRIBUTE", "DynamoStore", "keys"]
