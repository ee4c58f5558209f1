"""Session windows: per key, `[first_t, last_t + gap)`; sessions whose intervals overlap or
touch merge, so events exactly `gap` apart share a session. This is Flink's rule (every event
opens `[t, t + gap)`; `TimeWindow.intersects` is inclusive at both ends) and Kafka Streams'
(its inactivity gap is inclusive).

A session that is already final is never reopened: the caller leaves final sessions out of
`merge`, so a later event that would have overlapped one starts a new session. With
`max_length`, an event at or beyond `first_t + max_length` starts a new session instead of
extending the current one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    start_ms: int  # first event time
    last_ms: int  # last event time
    acc: dict[str, Any]
    n: int
    stored: bool = False  # holds state written by an earlier batch
    members: list[Any] = field(default_factory=list)  # this batch's events in the session
    version: int = 0  # last version published early (`emit: updates`)
    published_n: int = 0  # events in that version

    def end_ms(self, gap_ms: int) -> int:
        return self.last_ms + gap_ms


@dataclass(frozen=True, slots=True)
class SessionAssigner:
    gap_ms: int
    max_length_ms: int | None = None

    def overlaps(self, current: Session, nxt: Session) -> bool:
        if nxt.start_ms > current.end_ms(self.gap_ms):
            return False  # touching intervals (exactly `gap` apart) still merge
        if self.max_length_ms is not None:
            return max(current.last_ms, nxt.last_ms) - current.start_ms < self.max_length_ms
        return True

    def merge(self, sessions: list[Session], merge_acc: Any) -> list[Session]:
        """Merge overlapping or touching sessions (stored ones and this batch's one-event ones).

        `merge_acc(a, b)` merges two accumulators. The result is ordered by start; inputs
        are not modified.
        """
        ordered = sorted(sessions, key=lambda s: (s.start_ms, s.last_ms))
        merged: list[Session] = []
        for session in ordered:
            if merged and self.overlaps(merged[-1], session):
                current = merged[-1]
                merged[-1] = Session(
                    start_ms=current.start_ms,
                    last_ms=max(current.last_ms, session.last_ms),
                    acc=merge_acc(current.acc, session.acc),
                    n=current.n + session.n,
                    stored=current.stored or session.stored,
                    members=current.members + session.members,
                    # Versions keep counting across a merge; the merged content is new.
                    version=max(current.version, session.version),
                    published_n=-1,
                )
            else:
                merged.append(
                    Session(session.start_ms, session.last_ms, session.acc, session.n,
                            session.stored, list(session.members), session.version,
                            session.published_n)
                )
        return merged
