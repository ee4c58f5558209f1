"""Closing bundled session state (`mini_batch` with session windows): each run merges every
key's fragments from the bundles, publishes the sessions its watermark made final, and
records how far it got with one conditional write.

Fragments are merged in the order of the watermark they were judged at (`since`, the
shard's watermark when its flush was written), and before a fragment joins, the sessions
already final at its `since` are set aside: a fragment never extends a session that was
final when it was written (the session's events were published, or could have been). This
is what makes the published sessions the same whenever closers run:

* A run at pipeline watermark W publishes the sessions final at W (`close_at <= W`). Every
  fragment written after the run read the bundles was judged at a watermark at or above W
  (a shard's watermark passes its buffer only after the flush, and W is the minimum over
  shards), so it cannot change a session final at W.
* Progress (`closed` on the `BUNDLED` item) is the watermark through which every final
  session is published: a run publishes those with `closed < close_at <= W`, and a crash
  before recording it publishes them again with the same idempotency keys.
* A bucket (the bundles of fragments starting within it) leaves the set the closer reads
  once every session touching it is published and no future fragment can start in it.
  Bundles expire (TTL); a run keeps the bundles of sessions still open alive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from tidegate import bundles
from tidegate.bundle_closer import BundledCloser
from tidegate.closer import CLOSE_BATCH, CloseOutcome
from tidegate.errors import ConditionFailedError
from tidegate.partials import SessionFold
from tidegate.results import WindowResult
from tidegate.state import keys
from tidegate.state.store import Item
from tidegate.versions import Decision
from tidegate.windows.session import Session, SessionState

# Bundles of a session still open are kept alive when they would expire within this long.
_KEEP_ALIVE_S = 2 * 86_400


class SessionBundleCloser(BundledCloser):
    def __init__(self, sessions: SessionState, **common: Any) -> None:
        super().__init__(**common)
        self.sessions = sessions
        self.fold = SessionFold(sessions)

    def close_partitions(
        self,
        watermark: int,
        partitions: Iterable[str],
        batch: int = CLOSE_BATCH,
        keep_going: Callable[[], bool] | None = None,
    ) -> CloseOutcome:
        outcome = CloseOutcome(watermark=watermark)
        meta = self.watermarks.pk
        progress = bundles.Progress.read(self.store, meta)
        closed, buckets = progress.closed, progress.panes
        early = self.trigger.early_updates
        if not buckets or (not early and closed is not None and watermark <= closed):
            return outcome  # nothing final since (early versions may still be due)
        positions = self.positions() if early else None
        items = {b: self.store.query_partition(self._bucket_pk(b)) for b in buckets}
        sessions = self._sessions(items)
        state, gap = self.sessions, self.sessions.assigner.gap_ms
        due = sorted(
            ((state.close_at(s), key, s) for key, s in sessions
             if state.close_at(s) <= watermark and (closed is None or state.close_at(s) > closed)),
            key=lambda d: (d[0], d[1], d[2].start_ms),
        )
        through = self._publish(due, watermark, batch, outcome, keep_going)
        early_done = early and self._publish_early(
            [(key, s) for key, s in sessions
             if s.end_ms(gap) <= watermark < state.close_at(s)
             and (progress.early is None or s.end_ms(gap) > progress.early
                  or any(progress.is_new(flush) for _, flush in s.members))],
            batch, outcome)
        if through is not None and closed is not None and through <= closed:
            through = closed
        done = [] if through is None else self._done_buckets(buckets, sessions, through)
        self._keep_alive(items, done)
        if due or done or early_done:
            try:
                self.store.advance_bundle_progress(
                    meta, bundles.BUNDLED_SK, through, closed, done,
                    early=watermark if early_done else None,
                    seen=positions if early_done else None)
            except ConditionFailedError:
                pass  # a racing closer recorded it; what we published repeats its keys
        return outcome

    def _bucket_pk(self, bucket: int) -> str:
        p = self.pipeline
        return bundles.bundle_pk(p.name, p.state_version, bucket)

    def _sessions(self, items: dict[int, list[Item]]) -> list[tuple[str, Session]]:
        """Every key's sessions from its fragments; a session's `members` are the (bucket,
        flush) of each fragment it holds."""
        by_key: dict[str, list[tuple[bundles.Row, tuple[int, tuple[str, str]]]]] = {}
        for bucket, bucket_items in items.items():
            for item in bucket_items:
                flush = bundles.flush_of(item)
                for row in bundles.rows_of(item):
                    by_key.setdefault(row.key, []).append((row, (bucket, flush)))
        return [(key, s) for key, rows in sorted(by_key.items()) for s in self._merge(rows)]

    def _merge(self, rows: list[tuple[bundles.Row, Any]]) -> list[Session]:
        """A key's fragments merged in the order of the watermark each was judged at; a
        session final at that watermark takes no more fragments."""
        state, assigner = self.sessions, self.sessions.assigner
        final: list[Session] = []
        live: list[Session] = []
        by_since: dict[int, list[Session]] = {}
        for row, member in rows:
            fragment = Session(row.tmin, row.tmax, row.acc, row.n, members=[member])
            by_since.setdefault(row.first_ws, []).append(fragment)
        for since, fragments in sorted(by_since.items()):
            final += [s for s in live if state.close_at(s) <= since]
            live = [s for s in live if state.close_at(s) > since]
            live = assigner.merge(live + fragments, self.acc.merge)
        return sorted(final + live, key=lambda s: s.start_ms)

    def _result(self, key: str, s: Session, final: bool) -> WindowResult:
        p = self.pipeline
        flushes = len({flush for _, flush in s.members})
        return self.result(keys.key_pk(p.name, p.state_version, key), s.start_ms,
                           s.end_ms(self.sessions.assigner.gap_ms), s.acc,
                           self.version_of(flushes, final), final)

    def _publish_early(self, sessions: list[tuple[str, Session]], batch: int,
                       outcome: CloseOutcome) -> bool:
        """`emit: updates`: an early version of each session that ended and is not final
        and holds what no version carried; False when some were not published."""
        ownership = self.versions.ownership(self.pipeline.state_version)
        mine = [(key, s) for key, s in sessions
                if ownership.decide(self.sessions.close_at(s)) == Decision.PUBLISH]
        results = [self._result(key, s, final=False) for key, s in mine]
        return self.publish_results(results, batch, outcome) and len(mine) == len(sessions)

    def _publish(
        self, due: list[tuple[int, str, Session]], watermark: int, batch: int,
        outcome: CloseOutcome, keep_going: Callable[[], bool] | None,
    ) -> int | None:
        """Publish `due` in order of close_at, `batch` at a time; returns the watermark
        through which every final session is now published."""
        ownership = self.versions.ownership(self.pipeline.state_version)
        i = 0
        while i < len(due):
            chunk = due[i : i + batch]
            decisions = [ownership.decide(close_at) for close_at, _, _ in chunk]
            if Decision.HOLD in decisions:
                # A replay's switch decides who publishes this session and the rest.
                chunk = chunk[: decisions.index(Decision.HOLD)]
                held = True
            else:
                held = False
            results: list[WindowResult] = []
            for (_, key, s), decision in zip(chunk, decisions, strict=False):
                result = self._result(key, s, final=True)
                if decision == Decision.PUBLISH:
                    results.append(result)
                else:
                    outcome.suppressed += 1
            if not self.publish_results(results, batch, outcome):
                return chunk[0][0] - 1  # published again, same keys, by the next run
            outcome.windows_closed += len(chunk)
            i += len(chunk)
            if held:
                return due[i][0] - 1
            if i < len(due) and keep_going is not None and not keep_going():
                return due[i][0] - 1
        return watermark

    def _done_buckets(
        self, buckets: list[int], sessions: list[tuple[str, Session]], through: int,
    ) -> list[int]:
        """Buckets no unpublished session draws on, and no fragment can still start in:
        one written later was judged at a watermark above `through`, so its events end
        after it (a fragment final when written goes to the late queue instead)."""
        state = self.sessions
        busy = {b for _, s in sessions if state.close_at(s) > through for b, _ in s.members}
        horizon = self.fold.bucket_ms + state.assigner.gap_ms + self.pipeline.allowed_lateness
        return [b for b in buckets if b not in busy and b + horizon <= through]

    def _keep_alive(self, items: dict[int, list[Item]], done: list[int]) -> None:
        """A session can outlast the bundles' retention: the bundles of buckets still in
        use that would expire soon are kept for another retention."""
        now_s = self.now_ms() // 1000
        until = now_s + bundles.BUNDLE_RETENTION_S
        for bucket, bucket_items in items.items():
            if bucket in done:
                continue
            for item in bucket_items:
                expire_at = item.get("expire_at")
                if expire_at is not None and int(expire_at) < now_s + _KEEP_ALIVE_S:
                    self.store.keep_until(item["PK"], item["SK"], until)
