"""Redriven dead letters: put back on the source, and applied at most once.

A redriven record gets a new position in the log, so the high-water marks that make a
redelivery harmless cannot recognise a second copy of it (a redrive interrupted after the
put and run again; the dead-letter queue delivering a message twice). So the redrive wraps
each record in an envelope that carries a stable id, derived from where the record first
entered the pipeline; the ingest adds the ids it applied to the state item, in the same
conditional write as the events, and counts a copy whose id the item holds as a duplicate.

Why an envelope in the data: a Kinesis record carries nothing but its data and its
partition key, and the partition key must stay the aggregation key (it keeps a key's
records in one ordered lane when ParallelizationFactor > 1). The envelope begins with
0xFF, which no record a decoder accepts begins with (it is neither UTF-8 nor a Glue
header byte), so the ingest looks for it only in a record that failed to decode: records
without one pay nothing for it.

Envelope: MAGIC, the header's length (2 bytes, big-endian), the header (JSON:
`{"id": ..., "of": {original source coordinates}}`), then the record's own bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tidegate.schemas.decode import DecodedBatch
    from tidegate.sources.records import SourceRecord

MAGIC = b"\xfftgrd1"  # 6 bytes: its base64 is a fixed 8-character prefix
_PREFIX_B64 = base64.b64encode(MAGIC).decode("ascii")
# The state item attribute holding the redrive ids applied to it (a string set).
APPLIED_ATTR = "rd"


def redrive_id(pipeline: str, partition: str, position: str) -> str:
    """Stable id of a record by where it first entered `pipeline`: every copy of it that a
    redrive puts back, whatever the fix made of it, has this id."""
    digest = hashlib.sha256(f"{pipeline}\n{partition}\n{position}".encode()).hexdigest()
    return digest[:32]


def wrap(payload: bytes, rid: str, original: dict[str, Any]) -> bytes:
    header = json.dumps({"id": rid, "of": original}, separators=(",", ":")).encode("utf-8")
    if len(header) > 0xFFFF:
        raise ValueError("redrive header too large")
    return MAGIC + len(header).to_bytes(2, "big") + header + payload


def unwrap_bytes(raw: bytes) -> tuple[str, dict[str, Any], bytes] | None:
    """(id, original coordinates, payload) of an envelope; None if `raw` is not one."""
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 2:
        return None
    start = len(MAGIC) + 2
    size = int.from_bytes(raw[len(MAGIC):start], "big")
    try:
        header = json.loads(raw[start:start + size])
        rid, original = header["id"], header["of"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(rid, str) or not isinstance(original, dict):
        return None
    return rid, original, raw[start + size:]


def unwrap(record: SourceRecord) -> bool:
    """Turn a redriven record back into the record it carries, remembering its id and
    original coordinates. False (record unchanged) when it carries no envelope."""
    if not record.data_b64.startswith(_PREFIX_B64):
        return False
    try:
        raw = base64.b64decode(record.data_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    found = unwrap_bytes(raw)
    if found is None:
        return False
    record.redrive_id, record.redrive_of, payload = found
    record.data_b64 = base64.b64encode(payload).decode("ascii")
    return True


def skip_applied(
    batch: DecodedBatch, indices: list[int], item: dict[str, Any] | None
) -> tuple[list[int], int]:
    """Leave out redriven records the item already holds, and all but the first copy of
    one within the batch; returns the rest and how many were left out."""
    seen = set(item.get(APPLIED_ATTR, ())) if item else set()
    kept: list[int] = []
    skipped = 0
    for i in indices:
        rid = batch.record(i).redrive_id if i in batch.redriven else None
        if rid is not None:
            if rid in seen:
                skipped += 1
                continue
            seen.add(rid)
        kept.append(i)
    return kept, skipped


def record_applied(item: dict[str, Any], batch: DecodedBatch, applied: list[int]) -> None:
    """Add the ids of the redriven records in `applied` to the item about to be written."""
    ids = {batch.record(i).redrive_id for i in applied if i in batch.redriven}
    ids.discard(None)
    if ids:
        item[APPLIED_ATTR] = set(item.get(APPLIED_ATTR, ())) | ids
