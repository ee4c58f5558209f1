"""Item keys of the state table.

| item                 | PK                           | SK                  |
|----------------------|------------------------------|---------------------|
| pane of a key        | `A#<pipeline>#v<ver>#<key>`  | `P#<start>`         |
| window result        | `A#<pipeline>#v<ver>#<key>`  | `W#<start>`         |
| partition watermark  | `M#<pipeline>#v<ver>`        | `WM#<partition>`    |
| pipeline watermark   | `M#<pipeline>#v<ver>`        | `PIPE`              |

Window bounds are signed, so sort keys encode them with an offset at a fixed width:
string order is numeric order. Source positions (Kinesis sequence numbers have up to 56
digits, more than a DynamoDB Number keeps) are stored as fixed-width digit strings.
"""

from __future__ import annotations

import zlib

_OFFSET = 10**17
_WIDTH = 18
POSITION_WIDTH = 64


def encode_time(ms: int) -> str:
    value = ms + _OFFSET
    if not 0 <= value < 10**_WIDTH:
        raise ValueError(f"time {ms} out of the encodable range")
    return str(value).zfill(_WIDTH)


def decode_time(text: str) -> int:
    return int(text) - _OFFSET


def position_mark(position: str | int) -> str:
    """Sequence number or offset -> a string whose order is the numeric order."""
    # Computed for every record: ASCII digits that fit the width (every Kinesis sequence
    # number) pad to the same string as their int() does, leading zeros included; anything
    # else (signs, spaces, underscores, non-ASCII digits) is normalised through int().
    if (
        type(position) is str
        and len(position) <= POSITION_WIDTH
        and position.isascii()
        and position.isdigit()
    ):
        return position.zfill(POSITION_WIDTH)
    return str(int(position)).zfill(POSITION_WIDTH)


def key_pk(pipeline: str, version: int, key: str) -> str:
    return f"A#{pipeline}#v{version}#{key}"


def key_of_pk(pk: str) -> str:
    return pk.split("#", 3)[3]


def pane_sk(start_ms: int) -> str:
    return f"P#{encode_time(start_ms)}"


def window_sk(start_ms: int) -> str:
    return f"W#{encode_time(start_ms)}"


def start_of_sk(sk: str) -> int:
    return decode_time(sk[2:])


def meta_pk(pipeline: str, version: int) -> str:
    return f"M#{pipeline}#v{version}"


def watermark_sk(partition: str) -> str:
    return f"WM#{partition}"


PIPELINE_SK = "PIPE"


def open_index_pk(pipeline: str, version: int, key: str, shards: int) -> str:
    """Partition of the open-window index; crc32 keeps it stable across processes."""
    n = zlib.crc32(key.encode("utf-8")) % shards
    return f"open#{pipeline}#v{version}#{n}"


def open_index_partitions(pipeline: str, version: int, shards: int) -> list[str]:
    return [f"open#{pipeline}#v{version}#{n}" for n in range(shards)]


def snapshot_attrs(window_start_ms: int) -> tuple[str, str]:
    """Attributes holding a pane's accumulator and count as frozen for one window."""
    enc = encode_time(window_start_ms)
    return f"sa_{enc}", f"sn_{enc}"
