"""count, sum, min, max, avg."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tidegate.aggregates import exact
from tidegate.aggregates.base import AggregateFunction, plain
from tidegate.aggregates.base import exact as exact_number
from tidegate.aggregates.exact import Total
from tidegate.spec import Pipeline


def _total_add(total: Any, value: Any) -> Total:
    """An exact total plus one value (an int, a float, or a total of the same kind)."""
    if type(value) is float:
        return exact.stored(exact.add_float(exact.parse(total), value))
    return exact.stored(exact.add(exact.parse(total), exact.parse(value)))


def _total_add_all(total: Any, values: list[Any]) -> Total:
    """`_total_add` of each value in turn, parsed once and stored once."""
    running = exact.parse(total)
    for value in values:
        if type(value) is float:
            running = exact.add_float(running, value)
        else:
            running = exact.add(running, exact.parse(value))
    return exact.stored(running)


@dataclass(frozen=True, slots=True)
class Count:
    name: str
    field: str | None = None

    @property
    def state_name(self) -> str:
        return f"count:{self.field or '*'}"

    def create(self) -> int:
        return 0

    def add(self, acc: int, value: Any) -> int:
        return acc + 1

    def add_all(self, acc: int, values: list[Any]) -> int:
        if type(acc) is int:
            return acc + len(values)  # integer +1s, all at once
        for value in values:
            acc = self.add(acc, value)
        return acc

    add_ints = add_all

    def merge(self, a: int, b: int) -> int:
        return int(a) + int(b)

    def result(self, acc: int) -> int:
        return int(acc)


@dataclass(frozen=True, slots=True)
class Sum:
    """acc = [total, saw_float]; the total is exact (aggregates/exact.py), so the result is
    the same whatever the batch split, merge order, pane layout or shard count."""

    name: str
    field: str | None

    @property
    def state_name(self) -> str:
        return f"sum:{self.field}"

    def create(self) -> list[Any]:
        return [0, False]

    def add(self, acc: list[Any], value: int | float) -> list[Any]:
        total = acc[0]
        if type(value) is int and type(total) is int:
            return [total + value, acc[1] or False]
        return [_total_add(total, value), acc[1] or isinstance(value, float)]

    def add_all(self, acc: list[Any], values: list[Any]) -> list[Any]:
        total, saw_float = acc
        if type(total) is int and set(map(type, values)) <= _INTS:
            return [total + sum(values), saw_float or False]
        saw_float = saw_float or any(isinstance(v, float) for v in values)
        return [_total_add_all(total, values), saw_float]

    add_ints = add_all

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        if type(a[0]) is int and type(b[0]) is int:
            return [a[0] + b[0], bool(a[1]) or bool(b[1])]
        return [_total_add(a[0], b[0]), bool(a[1]) or bool(b[1])]

    def result(self, acc: list[Any]) -> int | float:
        total = exact.parse(acc[0])
        return exact.rounded(total) if acc[1] else exact.integral(total)


@dataclass(frozen=True, slots=True)
class Extreme:
    """min or max; acc = [value, value_was_float] or [None, False] when empty."""

    name: str
    field: str | None
    largest: bool

    @property
    def state_name(self) -> str:
        return f"{'max' if self.largest else 'min'}:{self.field}"

    def create(self) -> list[Any]:
        return [None, False]

    def _better(self, a: list[Any], b: list[Any]) -> list[Any]:
        if a[0] is None:
            return b
        if b[0] is None:
            return a
        if b[0] == a[0]:
            # Equal values: prefer the float rendering only if both were floats.
            return [a[0], bool(a[1]) and bool(b[1])]
        if (b[0] > a[0]) == self.largest:
            return b
        return a

    def add(self, acc: list[Any], value: int | float) -> list[Any]:
        current = acc[0]
        if type(value) is int:
            if type(current) is int:
                # _better for two ints, without building the candidate when it loses.
                if value == current:
                    return [current, False]
                if (value > current) == self.largest:
                    return [value, False]
                return acc
            if current is None:
                return [value, False]  # _better of nothing and this value
        return self._better(acc, [exact_number(value), isinstance(value, float)])

    def add_all(self, acc: list[Any], values: list[Any]) -> list[Any]:
        """`add` of each value in turn, with the int-against-int step inline."""
        largest = self.largest
        for value in values:
            current = acc[0]
            if type(value) is int:
                if type(current) is int:
                    if value == current:
                        acc = [current, False]
                    elif (value > current) == largest:
                        acc = [value, False]
                    continue
                if current is None:
                    acc = [value, False]  # _better of nothing and this value
                    continue
            acc = self.add(acc, value)
        return acc

    def add_ints(self, acc: list[Any], values: list[int]) -> list[Any]:
        """add_all of plain ints, from their own extreme: `add` keeps the accumulator
        unless a value equals or beats it, and then the result is [that value, False]."""
        current = acc[0]
        if not values or not (current is None or type(current) is int):
            return self.add_all(acc, values)
        best = max(values) if self.largest else min(values)
        if current is None or best == current:
            return [best, False]
        if (best > current) == self.largest:
            return [best, False]
        return acc

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return self._better(a, b)

    def result(self, acc: list[Any]) -> int | float | None:
        return None if acc[0] is None else plain(acc[0], bool(acc[1]))


@dataclass(frozen=True, slots=True)
class Avg:
    """acc = [total, count], the total exact as Sum's; the result is always a float (or None
    with no values): the float nearest the exact mean."""

    name: str
    field: str | None

    @property
    def state_name(self) -> str:
        return f"avg:{self.field}"

    def create(self) -> list[Any]:
        return [0, 0]

    def add(self, acc: list[Any], value: int | float) -> list[Any]:
        total = acc[0]
        if type(value) is int and type(total) is int:
            return [total + value, acc[1] + 1]
        return [_total_add(total, value), acc[1] + 1]

    def add_all(self, acc: list[Any], values: list[Any]) -> list[Any]:
        total, count = acc
        if type(total) is int and set(map(type, values)) <= _INTS:
            return [total + sum(values), count + len(values)]
        return [_total_add_all(total, values), count + len(values)]

    add_ints = add_all

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        if type(a[0]) is int and type(b[0]) is int:
            return [a[0] + b[0], int(a[1]) + int(b[1])]
        return [_total_add(a[0], b[0]), int(a[1]) + int(b[1])]

    def result(self, acc: list[Any]) -> float | None:
        if not acc[1]:
            return None
        return exact.mean(exact.parse(acc[0]), int(acc[1]))


def build_aggregates(pipeline: Pipeline) -> list[AggregateFunction]:
    functions: list[AggregateFunction] = []
    for name, spec in pipeline.aggregates.items():
        if spec.op == "count":
            functions.append(Count(name, spec.field))
        elif spec.op == "sum":
            functions.append(Sum(name, spec.field))
        elif spec.op in ("min", "max"):
            functions.append(Extreme(name, spec.field, largest=spec.op == "max"))
        else:
            functions.append(Avg(name, spec.field))
    return functions


_INTS = {int}

# AccumulatorSet.of_event: `add(create(), v)` of a plain int v is [v, False] for sum, min
# and max, [v, 1] for avg; a count adds one whatever the value.
_COUNT, _PAIR, _AVG = 0, 1, 2
_FIRST_KINDS: dict[type, int] = {Count: _COUNT, Sum: _PAIR, Extreme: _PAIR, Avg: _AVG}


def _plain(value: Any) -> bool:
    """An immutable accumulator value: shared between accumulators without copying."""
    return value is None or type(value) in (int, bool, Decimal, str)


def _add_all_of(function: AggregateFunction) -> Callable[[Any, list[Any]], Any]:
    """The function's own `add_all`, else `add` of each value in turn."""
    own = getattr(function, "add_all", None)
    if own is not None:
        return own  # type: ignore[no-any-return]

    def add_each(acc: Any, values: list[Any]) -> Any:
        for value in values:
            acc = function.add(acc, value)
        return acc

    return add_each


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
            (name, f.field, _add_all_of(f), getattr(f, "add_ints", None) or _add_all_of(f))
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
        # A field's present values, and whether all are plain ints (then the aggregates
        # take them whole: add_ints); sum and max of one field share the list.
        present: dict[str | None, tuple[list[Any], bool]] = {}
        for state_name, field_name, add_all, add_ints in self._bulk_adders:
            found = present.get(field_name)
            if found is None:
                if field_name:
                    values = [e.get(field_name) for e in events]
                    if None in values:
                        values = [v for v in values if v is not None]
                else:
                    values = [True] * len(events)
                found = present[field_name] = (values, set(map(type, values)) == _INTS)
            values, ints_only = found
            acc[state_name] = (add_ints if ints_only else add_all)(acc[state_name], values)

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
