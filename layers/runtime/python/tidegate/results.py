"""The published result shape (shared/CONTRACT.md) and its idempotency key."""

from __future__ import annotations

import hashlib
import json
from typing import Any, TypedDict


class WindowResult(TypedDict):
    pipeline: str
    key: dict[str, Any]
    window_start: int
    window_end: int
    aggregates: dict[str, Any]
    version: int
    final: bool
    idempotency_key: str


def idempotency_key(
    pipeline: str, state_version: int, key: str, start_ms: int, end_ms: int, version: int
) -> str:
    """Same window and version -> same key, so consumers can drop a re-published result."""
    text = f"{pipeline}|{state_version}|{key}|{start_ms}|{end_ms}|{version}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def key_object(key_fields: list[str], key: str) -> dict[str, Any]:
    return dict(zip(key_fields, json.loads(key), strict=True))


def encode(result: WindowResult) -> bytes:
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
