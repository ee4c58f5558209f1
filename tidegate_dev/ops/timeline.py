"""The timeline of a local run, as a PNG: why each window closed when it did, and why an
event was late.

x is arrival order (records delivered so far), y is event time. Events are points coloured
by verdict, the pipeline watermark is a step line (its value after each closer round), and
each window is a band over its event-time range from its first event to its emission.

The recorder is the runner's observer (tidegate_dev.local.runner.RunObserver); verdicts are
worked out after the run from the dead-letter and late messages' source coordinates, so the
runtime is not touched. matplotlib is imported only when a picture is drawn.
"""

from __future__ import annotations

import base64
import bisect
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tidegate.schemas.eventtime import format_ms, to_epoch_ms
from tidegate.spec import Pipeline
from tidegate.watermark import MAX_WATERMARK, MIN_WATERMARK

WIDTH_PX, HEIGHT_PX, DPI = 1200, 650, 100
DENSITY_ABOVE = 20_000  # on-time events drawn as a density beyond this many points
SAMPLE_MARKED = 5_000  # late / dead-lettered points drawn at most (a sample beyond)
_DAY_MS = 86_400_000

ON_TIME, LATE, DEAD = "on-time", "late", "dead-lettered"


@dataclass
class _Event:
    x: int  # arrival order: 0 for the first record delivered
    t: int | None  # event time; None when the record has none that can be read
    key: str | None
    verdict: str = ON_TIME


@dataclass
class WindowSpan:
    start: int
    end: int
    first_x: int  # arrival order of its first event
    emitted_x: int  # records delivered when its (last) result was published
    keys: int = 1
    at_flush: bool = False


@dataclass
class TimelineRecorder:
    """Collects what the picture needs while the local runner runs."""

    pipeline: Pipeline
    events: list[_Event] = field(default_factory=list)
    watermarks: list[tuple[int, int]] = field(default_factory=list)  # (x, watermark)
    emissions: dict[tuple[str, int, int], tuple[int, bool]] = field(default_factory=dict)
    flush_x: int | None = None
    _index: dict[tuple[str, str], int] = field(default_factory=dict)
    _published: set[str] = field(default_factory=set)

    # -- the runner's observer -------------------------------------------------------------
    def on_batch(self, event: dict[str, Any]) -> None:
        from tidegate.sources import records_of

        for record in records_of(event):
            coordinates = (str(record.partition), str(record.position))
            if coordinates in self._index:
                continue  # a retry or duplicate delivery: the record arrived once
            self._index[coordinates] = len(self.events)
            t, key = self._read(record.data_b64)
            self.events.append(_Event(len(self.events), t, key))

    def on_round(self, outcome: Any, flush: bool) -> None:
        x = len(self.events)
        if flush:
            self.flush_x = x
        if outcome is None:
            return
        self.watermarks.append((x, int(outcome.watermark)))
        for result in outcome.results:
            ident = str(result.get("idempotency_key"))
            if ident in self._published:
                continue  # the same result again (a chaos retry): published once
            self._published.add(ident)
            window = (self._key_of(result.get("key", {})), int(result["window_start"]),
                      int(result["window_end"]))
            self.emissions[window] = (x, flush)

    def on_finish(self, output: Any) -> None:
        for verdict, messages in ((DEAD, output.dead_letters), (LATE, output.late)):
            for message in messages:
                source = message.get("source", {})
                i = self._index.get((str(source.get("partition")), str(source.get("position"))))
                if i is not None:
                    self.events[i].verdict = verdict

    # -- reading records -------------------------------------------------------------------
    def _key_of(self, values: dict[str, Any]) -> str:
        return json.dumps([values.get(k) for k in self.pipeline.key], separators=(",", ":"))

    def _read(self, data_b64: str) -> tuple[int | None, str | None]:
        try:
            obj = json.loads(base64.b64decode(data_b64))
            if not isinstance(obj, dict):
                return None, None
            t = to_epoch_ms(obj.get(self.pipeline.event_time))
            key = self._key_of(obj) if all(k in obj for k in self.pipeline.key) else None
            return t, key
        except (ValueError, TypeError, RecursionError):
            return None, None  # malformed (or not JSON, e.g. avro): no time to draw

    # -- derived ---------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        out = {ON_TIME: 0, LATE: 0, DEAD: 0}
        for e in self.events:
            out[e.verdict] += 1
        return out

    def windows(self) -> list[WindowSpan]:
        """One span per distinct window bounds (keys with the same bounds share a band)."""
        by_key: dict[str, list[tuple[int, int]]] = {}
        for e in self.events:
            if e.verdict == ON_TIME and e.t is not None and e.key is not None:
                by_key.setdefault(e.key, []).append((e.t, e.x))
        for rows in by_key.values():
            rows.sort()
        spans: dict[tuple[int, int], WindowSpan] = {}
        for (key, start, end), (emitted_x, at_flush) in self.emissions.items():
            rows = by_key.get(key, [])
            lo = bisect.bisect_left(rows, (start, -1))
            hi = bisect.bisect_left(rows, (end, -1))
            first_x = min((x for _, x in rows[lo:hi]), default=emitted_x)
            span = spans.get((start, end))
            if span is None:
                spans[(start, end)] = WindowSpan(start, end, first_x, emitted_x, 1, at_flush)
            else:
                span.first_x = min(span.first_x, first_x)
                span.emitted_x = max(span.emitted_x, emitted_x)
                span.keys += 1
                span.at_flush = span.at_flush or at_flush
        return sorted(spans.values(), key=lambda s: (s.start, s.end))


def _y(ms: float) -> float:
    """Epoch ms -> matplotlib date number (days since 1970, its default epoch)."""
    return ms / _DAY_MS


def render(recorder: TimelineRecorder, path: str | Path, seed: int = 0) -> Path:
    """Draw the timeline; returns the path. WIDTH_PX x HEIGHT_PX pixels."""
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, never a display
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    rng = random.Random(seed)
    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.13, 0.70, 0.78))
    notes: list[str] = []
    counts = recorder.counts()
    total = len(recorder.events)

    # Windows first, underneath everything.
    spans = recorder.windows()
    if spans:
        verts = [[(s.first_x, _y(s.start)), (s.emitted_x, _y(s.start)),
                  (s.emitted_x, _y(s.end)), (s.first_x, _y(s.end))] for s in spans]
        ax.add_collection(PolyCollection(verts, facecolors="#4c72b0", alpha=0.12,
                                         edgecolors="#4c72b0", linewidths=0.4,
                                         label="window: first event → emitted"))
        live = [s for s in spans if not s.at_flush]
        # Above the watermark line: a window is emitted where the watermark passes its end.
        ax.scatter([s.emitted_x for s in live], [_y(s.end) for s in live], marker="D",
                   s=24, color="#1f3b73", edgecolors="white", linewidths=0.6, zorder=7,
                   label="window emitted")
        shared = max(s.keys for s in spans)
        if shared > 1:
            notes.append(f"windows with the same bounds share one band (up to {shared} keys)")

    def points(verdict: str) -> tuple[list[int], list[float], int]:
        chosen = [e for e in recorder.events if e.verdict == verdict and e.t is not None]
        return [e.x for e in chosen], [_y(e.t) for e in chosen], len(chosen)  # type: ignore[arg-type]

    xs, ys, n = points(ON_TIME)
    if n > DENSITY_ABOVE:
        ax.hexbin(xs, ys, gridsize=(110, 45), bins="log", mincnt=1, cmap="Greys",
                  linewidths=0, zorder=2)
        ax.scatter([], [], marker="h", color="0.45", label=f"on-time ({n:,}, density)")
        notes.append(f"on-time events drawn as a density (log scale): {n:,} points "
                     f"> {DENSITY_ABOVE:,}")
    else:
        size = 6 if n <= 2_000 else 2
        ax.scatter(xs, ys, s=size, color="0.45", linewidths=0, zorder=2,
                   label=f"on-time ({n:,})")

    for verdict, colour, marker in ((LATE, "#dd8452", "^"), (DEAD, "#c44e52", "x")):
        xs, ys, n = points(verdict)
        if n > SAMPLE_MARKED:
            picked = sorted(rng.sample(range(n), SAMPLE_MARKED))
            xs, ys = [xs[i] for i in picked], [ys[i] for i in picked]
            notes.append(f"{verdict}: a random sample of {SAMPLE_MARKED:,} of {n:,} drawn")
        ax.scatter(xs, ys, s=22 if n <= 2_000 else 8, color=colour, marker=marker,
                   linewidths=1.0, zorder=5,
                   label=f"{verdict} ({counts[verdict]:,})")

    # Dead letters without a readable event time sit on a strip along the bottom.
    timeless = [e.x for e in recorder.events if e.t is None and e.verdict == DEAD]
    if timeless:
        strip = blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(timeless, [0.02] * len(timeless), transform=strip, s=22, marker="x",
                   color="#c44e52", linewidths=1.0, zorder=5, clip_on=False)
        notes.append(f"{len(timeless):,} dead-lettered record(s) without a readable event "
                     "time are shown along the bottom edge")

    finite = [(x, w) for x, w in recorder.watermarks if MIN_WATERMARK < w < MAX_WATERMARK]
    if finite:
        wx = [x for x, _ in finite]
        wy = [_y(w) for _, w in finite]
        ax.step(wx, wy, where="post", color="#55a868", linewidth=1.8, zorder=6,
                label="pipeline watermark")
    if recorder.flush_x is not None:
        ax.axvline(recorder.flush_x, color="#55a868", linestyle="--", linewidth=1.0, zorder=6)
        ax.text(recorder.flush_x, 0.98, " end of input:\n watermark → +∞", transform=
                blended_transform_factory(ax.transData, ax.transAxes), va="top", ha="right",
                fontsize=8, color="#2f6b3d")

    ax.autoscale_view()
    ax.set_xlim(left=0, right=max(total, 1) * 1.01)
    ax.yaxis_date()
    locator = mdates.AutoDateLocator()
    ax.yaxis.set_major_locator(locator)
    ax.yaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("arrival order (records delivered to the ingest function)")
    ax.set_ylabel("event time (UTC)")
    ax.grid(True, color="0.92", linewidth=0.6)
    times = [e.t for e in recorder.events if e.t is not None]
    span_text = f"{format_ms(min(times))} … {format_ms(max(times))}" if times else ""
    ax.set_title(
        f"{recorder.pipeline.name}: {total:,} records — {counts[ON_TIME]:,} on time, "
        f"{counts[LATE]:,} late, {counts[DEAD]:,} dead-lettered; {len(spans):,} window "
        f"band(s)\n{span_text}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if notes:
        fig.text(0.08, 0.015, "Note: " + "; ".join(notes), fontsize=7.5, color="0.3",
                 wrap=True)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out
