"""The built-in aggregate functions: count, sum, min, max, avg (aggregates/registry.py names
them for the pipeline file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidegate.aggregates import exact
from tidegate.aggregates.base import comparable, plain
from tidegate.aggregates.exact import Total


def _total_add(total: Any, value: Any) -> Total:
    """An exact total plus one value (an int, a float, or a total of the same kind)."""
    if type(total) is int and type(value) is int:
        return total + value
    return exact.stored(exact.add(exact.parse(total), exact.parse(value)))


def _total_add_all(total: Any, values: list[Any]) -> Total:
    """`_total_add` of each value in turn, parsed once and stored once."""
    running = exact.parse(total)
    for value in values:
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

    def merge(self, a: int, b: int) -> int:
        return int(a) + int(b)

    def result(self, acc: int) -> int:
        return int(acc)


@dataclass(frozen=True, slots=True)
class Sum:
    """acc = [total, saw_float]; the total is exact (aggregates/exact.py), so the result is
    the same whatever the batch split, merge order, pane layout or shard count. `floats`:
    the field is declared `number`, so the result is a float in every window, not only in
    those where a value happened to be written with a fraction."""

    name: str
    field: str | None
    floats: bool = False

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

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [_total_add(a[0], b[0]), bool(a[1]) or bool(b[1])]

    def result(self, acc: list[Any]) -> int | float:
        total = exact.parse(acc[0])
        return exact.rounded(total) if acc[1] or self.floats else exact.integral(total)


@dataclass(frozen=True, slots=True)
class Extreme:
    """min or max; acc = [value, value_was_float] or [None, False] when empty. `floats`: as
    Sum's (a `number` field's extreme is a float in every window)."""

    name: str
    field: str | None
    largest: bool
    floats: bool = False

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
        return self._better(acc, [comparable(value), isinstance(value, float)])

    def add_all(self, acc: list[Any], values: list[Any]) -> list[Any]:
        """`add` of each value in turn. Plain ints all: `add` keeps the accumulator unless a
        value equals or beats it, and then the result is [that value, False], so the
        values' own extreme decides at once."""
        current = acc[0]
        if values and (current is None or type(current) is int) and \
                set(map(type, values)) <= _INTS:
            best = max(values) if self.largest else min(values)
            if current is None or best == current or (best > current) == self.largest:
                return [best, False]
            return acc
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

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return self._better(a, b)

    def result(self, acc: list[Any]) -> int | float | None:
        return None if acc[0] is None else plain(acc[0], bool(acc[1]) or self.floats)


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

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return [_total_add(a[0], b[0]), int(a[1]) + int(b[1])]

    def result(self, acc: list[Any]) -> float | None:
        if not acc[1]:
            return None
        return exact.mean(exact.parse(acc[0]), int(acc[1]))


_INTS = {int}
