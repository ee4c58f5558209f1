"""Progress and tables for people: on stderr while running, results readable at a glance."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tidegate.schemas.eventtime import format_ms

# A file or CI log has no width; rich then assumes 80 columns and cuts a summary table's
# headers and figures to `worke…`. Logs get room for the widest table instead.
LOG_WIDTH = 160


def console_for(stderr: bool = False) -> Console:
    """A terminal's own width; a log's LOG_WIDTH unless COLUMNS says otherwise."""
    console = Console(stderr=stderr)
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    return Console(stderr=stderr, width=LOG_WIDTH)


err = console_for(stderr=True)
out = console_for()


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    if not enabled:
        yield lambda done, total: None
        return
    if not err.is_terminal:
        # rich draws nothing until the end when stderr is a file or a CI log: a run of half an
        # hour would look hung. Plain lines instead, at most one per LOG_EVERY_S.
        yield _logged_progress(label)
        return
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


LOG_EVERY_S = 15.0


def _logged_progress(label: str) -> Callable[[int, int], None]:
    started = time.monotonic()
    last = {"at": -LOG_EVERY_S}

    def update(done: int, total: int) -> None:
        now = time.monotonic() - started
        if now - last["at"] < LOG_EVERY_S and done < total:
            return
        last["at"] = now
        share = f" ({100 * done / total:.0f} %)" if total else ""
        err.print(f"{label} {done:,}/{total:,}{share} after {now:.0f} s", highlight=False)

    return update


def results_table(results: list[dict[str, Any]], limit: int = 40) -> Table:
    """One row per published result; a redelivered copy (same idempotency key: the sink is
    at-least-once) is counted in the caption, not shown again."""
    distinct = list({r.get("idempotency_key", id(r)): r for r in reversed(results)}.values())
    repeats = len(results) - len(distinct)
    names = list(results[0]["aggregates"]) if results else []
    table = Table(title=f"results ({len(distinct)} windows)", show_lines=False)
    table.add_column("key")
    table.add_column("window (UTC)")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("v", justify="right")
    ordered = sorted(distinct, key=lambda r: (r["window_start"], str(r["key"]), r["version"]))
    for r in ordered[:limit]:
        key = ", ".join(f"{k}={v}" for k, v in r["key"].items())
        window = f"{format_ms(r['window_start'])[11:19]}-{format_ms(r['window_end'])[11:19]}"
        values = [_number(r["aggregates"].get(n)) for n in names]
        table.add_row(key, window, *values, str(r["version"]))
    notes = []
    if len(ordered) > limit:
        notes.append(f"first {limit} of {len(ordered)} by window start")
    if repeats:
        notes.append(f"{repeats} repeated deliveries (same idempotency key) not shown")
    table.caption = "; ".join(notes) or None
    return table


def summary_table(summary: dict[str, int]) -> Table:
    table = Table(title="summary")
    table.add_column("events in", justify="right")
    table.add_column("aggregated", justify="right")
    table.add_column("late", justify="right")
    table.add_column("dead-lettered", justify="right")
    table.add_column("duplicates skipped", justify="right")
    table.add_column("results", justify="right")
    table.add_row(*(str(summary[k]) for k in (
        "events_in", "aggregated", "late", "dead_lettered", "duplicates_skipped", "results"
    )))
    return table


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def reasons_table(dead_letters: list[dict[str, Any]], late: list[dict[str, Any]]) -> Table | None:
    """Why records were not aggregated: one row per output and reason, with a count and one
    example (where it was in the source, and the detail); None when every record was."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for output, messages in (("dead-lettered", dead_letters), ("late", late)):
        for message in messages:
            rows.setdefault((output, str(message.get("reason"))), []).append(message)
    if not rows:
        return None
    table = Table(title="not aggregated, and why", title_justify="left")
    for column in ("output", "reason", "records"):
        table.add_column(column, justify="right" if column == "records" else "left")
    table.add_column("example", overflow="fold")
    for (output, reason), messages in rows.items():
        first = messages[0]
        source = first.get("source") or {}
        where = f"{source.get('partition')} @ {source.get('position')}"
        table.add_row(output, reason, str(len(messages)), f"{where}: {first.get('detail')}")
    return table
