"""How many partitions the open-window index gets (`index_shards`), from expected keys.

Every open pane (tumbling, sliding) or open-sessions item sits in one index partition
`open#<pipeline>#v<ver>#<n>`, n = crc32(key) % shards. The index is written when an entry
enters it, and when its key attributes change or it leaves: about 2 index writes per key
per cadence (the window's slide; a tumbling window's size; a session's gap). DynamoDB
serves at most 1,000 write units a second per partition; keeping each index partition at
half of that leaves room for the burst at each window boundary and for crc32's spread:

    shards = ceil(2 * expected_keys / (cadence_s * 500)),  clamped to 1 .. 4096

Reads are far from their limit: a worker's Query reads ~100-byte index entries, 8 KB per
(eventually consistent) read unit, against 3,000 read units a second per partition.
"""

from __future__ import annotations

import math

DEFAULT_INDEX_SHARDS = 4  # no `expected_keys`: what pipelines have always had
MAX_INDEX_SHARDS = 4096
INDEX_WRITES_PER_KEY = 2  # per cadence: enter (or move) and leave
PARTITION_WCU = 1_000
HEADROOM = 0.5


def index_shards_for(expected_keys: int, cadence_ms: int) -> int:
    per_shard_wcu = PARTITION_WCU * HEADROOM
    writes_per_s = INDEX_WRITES_PER_KEY * expected_keys / (cadence_ms / 1000)
    return max(1, min(MAX_INDEX_SHARDS, math.ceil(writes_per_s / per_shard_wcu)))
