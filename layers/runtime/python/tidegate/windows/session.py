"""Session windows: the assigner, the state rules and the trigger's use for sessions.

Per key, `[first_t, last_t + gap)`; sessions whose intervals overlap or
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

from tidegate.aggregates.accumulators import AccumulatorSet
from tidegate.spec import Pipeline
from tidegate.state import keys
from tidegate.state.protocol import Group, Verdict
from tidegate.windows.trigger import EventTimeTrigger


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


# -- state: all open sessions of a key live in ONE item (`S#open`) -----------------------
# Keeping a key's open sessions together means a batch touches one item per key, written
# with one conditional put: merging sessions never needs a multi-item transaction on the
# ingest path, and redelivery is detected by the item's per-partition high-water marks,
# which survive every merge. The closer moves a final session out of this item into its
# own result item in one transaction (session_closer.py).

OPEN_SESSIONS_SK = "S#open"


def stored_sessions(item: dict[str, Any] | None) -> list[Session]:
    if not item:
        return []
    return [
        Session(int(s["start"]), int(s["last"]), s["acc"], int(s["n"]), stored=True,
                version=int(s.get("version", 0)), published_n=int(s.get("published_n", 0)))
        for s in item.get("sessions", [])
    ]


def session_record(session: Session) -> dict[str, Any]:
    record: dict[str, Any] = {"start": session.start_ms, "last": session.last_ms,
                              "acc": session.acc, "n": session.n}
    if session.version:
        record["version"] = session.version
        record["published_n"] = session.published_n
    return record


class SessionState:
    def __init__(
        self, pipeline: Pipeline, assigner: SessionAssigner, accumulators: AccumulatorSet
    ) -> None:
        self.pipeline = pipeline
        self.assigner = assigner
        self.acc = accumulators
        self.trigger = EventTimeTrigger.of(pipeline)

    def close_at(self, session: Session) -> int:
        return self.trigger.final_at(session.end_ms(self.assigner.gap_ms))

    def check_at(self, session: Session) -> int:
        """When the closer next has something to do for this session (the trigger's rule)."""
        return self.trigger.next_at(
            session.end_ms(self.assigner.gap_ms), session.published_n != session.n
        )

    def locate(self, key: str, time_ms: int) -> tuple[str, str]:
        return keys.key_pk(self.pipeline.name, self.pipeline.state_version, key), OPEN_SESSIONS_SK

    def slots(self, times: list[int]) -> list[int]:
        return [0] * len(times)  # all of a key's open sessions share one item

    def item_of(self, key: str, slot: int) -> tuple[str, str]:
        return self.locate(key, 0)

    def judge(self, group: Group, item: dict[str, Any] | None, watermark: int) -> Verdict:
        key = group.key
        fresh, duplicates, marks = group.fresh(item)
        expected = int(item["ver"]) if item else None
        if not fresh:
            return Verdict(None, expected, [], [], duplicates)

        stored = stored_sessions(item)
        # Final sessions are frozen (the closer will publish them as they are).
        final = [s for s in stored if self.close_at(s) <= watermark]
        live = [s for s in stored if self.close_at(s) > watermark]
        singles = []
        times, values = group.batch.times, group.batch.values
        for i in fresh:
            acc = self.acc.of_event(values[i])  # type: ignore[arg-type]  # valid record
            singles.append(Session(times[i], times[i], acc, 1, members=[i]))
        merged = self.assigner.merge(live + singles, self.acc.merge)

        late: list[int] = []
        kept: list[Session] = []
        for session in merged:
            if not session.stored and self.close_at(session) <= watermark:
                late += session.members  # only this batch's events, all final already
            else:
                kept.append(session)
        applied = [m for s in kept for m in s.members]
        if not applied:
            return Verdict(None, expected, [], late, duplicates)

        sessions = sorted(final + kept, key=lambda s: s.start_ms)
        new: dict[str, Any] = dict(item) if item else {
            "PK": keys.key_pk(self.pipeline.name, self.pipeline.state_version, key),
            "SK": OPEN_SESSIONS_SK,
            "ver": 0,
        }
        new["sessions"] = [session_record(s) for s in sessions]
        new["n"] = sum(s.n for s in sessions)
        new["ver"] = int(new["ver"]) + 1
        new["hw"] = marks
        new["open_pk"] = keys.open_index_pk(
            self.pipeline.name, self.pipeline.state_version, key, self.pipeline.index_shards
        )
        new["open_sk"] = min(self.check_at(s) for s in sessions)
        # `hw` must outlive the sessions it covers; the item stays after they close.
        new.pop("expire_at", None)
        return Verdict(new, expected, applied, late, duplicates)
