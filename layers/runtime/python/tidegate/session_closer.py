"""Closing session windows.

A final session leaves its key's open-sessions item and becomes its own result item in ONE
transaction (the open item's version is the condition), as CLOSING with its result and in
the open-window index. Publishing and marking EMITTED follow; a crash in between leaves the
CLOSING item in the index, and the next run re-publishes it with the same idempotency key.
"""

from __future__ import annotations

import json
from typing import Any

from tidegate.closer import Claim, Closer
from tidegate.errors import TooManyConflictsError, TransactionConflictError
from tidegate.state import keys
from tidegate.state.store import CLOSING, EMITTED, PENDING, PUBLISHED
from tidegate.windows.session import (
    OPEN_SESSIONS_SK,
    SessionState,
    session_record,
    stored_sessions,
)

_MAX_CONFLICT_RETRIES = 8


def session_sk(start_ms: int, end_ms: int) -> str:
    # Start alone is not unique: a new session may start where a final one did.
    return f"W#{keys.encode_time(start_ms)}#{keys.encode_time(end_ms)}"


class SessionCloser(Closer):
    def __init__(self, *args: Any, sessions: SessionState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions = sessions

    def claims(self, watermark: int, partitions: list[str] | None = None) -> list[Claim]:
        claims: list[Claim] = []
        for index_pk in partitions or self.index_partitions():
            for entry in list(self.store.query_open(index_pk, watermark)):
                if entry["SK"] == OPEN_SESSIONS_SK:
                    claims += self._close_due(entry["PK"], watermark)
                elif entry["SK"].startswith("W#"):
                    claims += self._reclaim(entry["PK"], entry["SK"])
        return sorted(claims, key=lambda c: (c.pk, c.window_start))

    def _reclaim(self, pk: str, sk: str) -> list[Claim]:
        """A session claimed by an earlier run that did not finish publishing it."""
        item = self.store.get(pk, sk)
        if item is None or item.get("state") in (EMITTED, PUBLISHED):
            return []
        result = json.loads(item["result_json"])
        final = item.get("state") == CLOSING
        return [Claim(pk, sk, int(result["window_start"]), result, final=final)]

    def _close_due(self, pk: str, watermark: int) -> list[Claim]:
        """Final sessions move out to result items; with `emit: updates`, sessions that
        ended and hold unpublished events get an early version. One transaction."""
        state = self.sessions
        gap = state.assigner.gap_ms
        for _ in range(_MAX_CONFLICT_RETRIES):
            item = self.store.get(pk, OPEN_SESSIONS_SK)
            if item is None:
                return []
            sessions = stored_sessions(item)
            due = [s for s in sessions if state.close_at(s) <= watermark]
            remaining = [s for s in sessions if state.close_at(s) > watermark]
            early = [s for s in remaining if state.check_at(s) <= watermark]
            if not due and not early:
                return []
            claims: list[Claim] = []
            results: list[dict[str, Any]] = []
            for session, final in [(s, True) for s in due] + [(s, False) for s in early]:
                end = session.end_ms(gap)
                version = session.version + 1
                result = self.result(pk, session.start_ms, end, session.acc, version, final)
                sk = session_sk(session.start_ms, end)
                if not final:
                    sk += f"#v{version}"
                    session.version, session.published_n = version, session.n
                claims.append(Claim(pk, sk, session.start_ms, result, final=final))
                results.append({
                    "PK": pk,
                    "SK": sk,
                    "state": CLOSING if final else PENDING,
                    "session": final,  # the events now live here (summary counts)
                    "result_json": json.dumps(result, separators=(",", ":")),
                    "n": session.n,
                    "version": version,
                    "open_pk": item["open_pk"],
                    "open_sk": watermark,
                })
            try:
                self.store.close_sessions(
                    pk, OPEN_SESSIONS_SK, int(item["ver"]), results,
                    [session_record(s) for s in remaining], sum(s.n for s in remaining),
                    min(state.check_at(s) for s in remaining) if remaining else None,
                )
                return claims
            except TransactionConflictError:
                # An ingest merged new events since our read: decide again on what it wrote.
                continue
        raise TooManyConflictsError(f"{pk}: too many conflicts while closing sessions")
