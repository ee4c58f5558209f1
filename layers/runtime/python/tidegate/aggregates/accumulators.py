"""A pipeline's aggregates over one pane or session, as one accumulator dict.

The functions' accumulators are independent; this folds events into all of them at once,
merges stored and fresh state, and renders results, with the per-event paths kept short
because they run for every event of every batch.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tidegate.aggregates.base import AggregateFunction
from tidegate.aggregates.builtin import Avg, Count, Extreme, Sum

# AccumulatorSet.of_event: `add(create(), v)` of a plain int v is [v, False] for sum, min
# and max, [v, 1] for avg; a count adds one whatever the value.
_COUNT, _PAIR, _AVG = 0, 1, 2
_FIRST_KINDS: dict[type, int] = {Count: _COUNT, Sum: _PAIR, Extreme: _PAIR, Avg: _AVG}


def _plain(value: Any) -> bool:
    """An immutable accumulator value: shared between accumulators without copying."""
    return value is None or type(value) in (int, bool, Decimal, str)


class AccumulatorSet:
    """All of a pipeline's aggregates over one pane or session, keyed by state name."""

    def __init__(self, functions: list[AggregateFunction]) -> None:
        # Aggregates with the same op and field share one accumulator.
        self.functions = functions
        self.by_state: dict[str, AggregateFunction] = {f.state_name: f for f in functions}
        self._fields = [(f.state_name, f.field) for f in self.by_state.values()]
        # Bound methods resolved once: add_event runs for every event of every batch.
        self._creators = [(name, f.create) for name, f in self.by_state.items()]
        self._counters = [
            name for name, f in self.by_state.items() if isinstance(f, Count) and not f.field
        ]
        self._adders = [
            (name, f.field, f.add) for name, f in self.by_state.items()
            if name not in self._counters
        ]
        self._bulk_adders = [
            (name, f.field, f.add_all)
            for name, f in self.by_state.items()
            if name not in self._counters
        ]

        # create() runs for every batch group: when every empty accumulator is a plain
        # value or a flat list of them (the built-ins'), copy a template instead of calling
        # each function's create().
        template = self._create_each()
        flat = all(_plain(v) or (type(v) is list and all(map(_plain, v)))
                   for v in template.values())
        self._template = template if flat else None
        self._lists = [name for name, v in template.items() if type(v) is list]
        # of_event's step per aggregate, in create()'s order: what `add` makes of an empty
        # accumulator and a plain int, for the built-ins (None: another aggregate is here).
        firsts: list[tuple[str, str | None, int, Any]] | None = []
        for name, f in self.by_state.items():
            kind = _FIRST_KINDS.get(type(f))
            if kind is None or firsts is None:
                firsts = None
                continue
            firsts.append((name, None if name in self._counters else f.field, kind, f.add))
        self._firsts = firsts

    def _create_each(self) -> dict[str, Any]:
        return {name: create() for name, create in self._creators}

    def create(self) -> dict[str, Any]:
        if self._template is None:
            return self._create_each()
        acc = self._template.copy()
        for name in self._lists:
            acc[name] = acc[name].copy()  # a list of its own, as create() returns
        return acc

    def of_event(self, values: dict[str, Any]) -> dict[str, Any]:
        """create() with one event added (add_event): a batch group's accumulator when the
        group holds one event, as most do, without building the empty one first."""
        firsts = self._firsts
        if firsts is None or self._template is None:
            acc = self.create()
            self.add_event(acc, values)
            return acc
        template = self._template
        acc = {}
        for name, field, kind, add in firsts:
            value = values.get(field) if field else True
            if value is None:  # absent: left as created
                empty = template[name]
                acc[name] = empty.copy() if type(empty) is list else empty
            elif kind == _COUNT:
                acc[name] = template[name] + 1
            elif type(value) is int:
                acc[name] = [value, False] if kind == _PAIR else [value, 1]
            else:
                empty = template[name]
                acc[name] = add(empty.copy() if type(empty) is list else empty, value)
        return acc

    def of_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """create() with `events` added: of_event for one, add_events for more."""
        if len(events) == 1:
            return self.of_event(events[0])
        acc = self.create()
        self.add_events(acc, events)
        return acc

    def add_event(self, acc: dict[str, Any], values: dict[str, Any]) -> None:
        """Fold one event's field values into `acc` in place; absent optional values skip."""
        for state_name in self._counters:
            # Count.add with a present value (a fieldless aggregate always sees one).
            acc[state_name] = acc[state_name] + 1
        for state_name, field_name, add in self._adders:
            value = values.get(field_name) if field_name else True
            if value is not None:
                acc[state_name] = add(acc[state_name], value)

    def add_events(self, acc: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """add_event for each of `events` in turn, one aggregate at a time.

        A batch group holds a few to thousands of events: per aggregate, one pass over its
        values costs a loop step per event instead of two calls. Each aggregate's
        accumulator sees the same values in the same order as through add_event, so the
        result is identical (accumulators are independent of one another).
        """
        if len(events) < 3:
            # Where most groups are (many keys, few events each): the per-event path costs
            # less than setting up the bulk one.
            for values in events:
                self.add_event(acc, values)
            return
        for state_name in self._counters:
            total = acc[state_name]
            if type(total) is int:
                acc[state_name] = total + len(events)
            else:
                for _ in events:
                    total = total + 1
                acc[state_name] = total
        # A field's present values; sum and max of one field share the list.
        present: dict[str | None, list[Any]] = {}
        for state_name, field_name, add_all in self._bulk_adders:
            found = present.get(field_name)
            if found is None:
                if field_name:
                    found = [e.get(field_name) for e in events]
                    if None in found:
                        found = [v for v in found if v is not None]
                else:
                    found = [True] * len(events)
                present[field_name] = found
            acc[state_name] = add_all(acc[state_name], found)

    def merge(self, a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
        merged = self.create()
        for name, f in self.by_state.items():
            left = (a or {}).get(name, merged[name])
            right = (b or {}).get(name, merged[name])
            merged[name] = f.merge(left, right)
        return merged

    def results(self, acc: dict[str, Any]) -> dict[str, Any]:
        full = self.merge(acc, None)
        return {f.name: f.result(full[f.state_name]) for f in self.functions}
