"""Exact sums of binary floats, independent of batch split and merge order.

Every finite double is an integer times a power of two, so any sum of them is `m * 2**e` for
integers `m` and `e`: integer arithmetic on `m` is exact, and the float of the exact sum is
rounded once, at the end, as `math.fsum` does. No library keeps such a sum in a form
DynamoDB can store (its numbers hold 38 decimal digits, too few: 1.0 + 1e39 - 1e39 needs 40),
so the form is written here: a string `"<m>p<e>"`, with `m` odd, a few digits more than the
inputs' own.

A total is an int (every value so far an integer: the common case, kept as a plain number),
an exact string, or a Decimal as DynamoDB returns stored numbers.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

Total = int | str | Decimal
Dyadic = tuple[int, int]  # (m, e): the value m * 2**e


def of_float(value: float) -> Dyadic:
    numerator, denominator = value.as_integer_ratio()
    return numerator, 1 - denominator.bit_length()  # the denominator is a power of two


def parse(total: Any) -> Dyadic:
    """A stored or in-memory total as (m, e)."""
    if type(total) is str:
        m, _, e = total.partition("p")
        return int(m), int(e)
    if type(total) is int:
        return total, 0
    if isinstance(total, float):
        return of_float(total)
    if isinstance(total, Decimal):
        if total == total.to_integral_value():
            return int(total), 0
        # A non-integral Decimal: a total stored before sums were exact (decimal digits of
        # the floats' reprs). Its nearest double is as close as that state ever was.
        return of_float(float(total))
    return int(total), 0  # bool


def add(a: Dyadic, b: Dyadic) -> Dyadic:
    (ma, ea), (mb, eb) = a, b
    if ea == eb:
        return ma + mb, ea
    if ea < eb:
        return ma + (mb << (eb - ea)), ea
    return (ma << (ea - eb)) + mb, eb


def stored(value: Dyadic) -> Total:
    """(m, e) in its storable form: a plain int when it is one, else `"<m>p<e>"`."""
    m, e = value
    if m == 0:
        return 0
    zeros = (m & -m).bit_length() - 1  # trailing zero bits: drop them, keep m odd
    m, e = m >> zeros, e + zeros
    if e >= 0 and e < 64:
        whole = m << e
        if -(10**38) < whole < 10**38:  # what a DynamoDB number holds
            return whole
    return f"{m}p{e}"


def rounded(value: Dyadic) -> float:
    """The float nearest the exact value (ties to even); ±inf beyond the float range."""
    m, e = value
    try:
        if e >= 0:
            return float(m << e)
        # CPython's int / int is correctly rounded, however large the operands.
        return m / (1 << -e)
    except OverflowError:
        return float("inf") if m > 0 else float("-inf")


def integral(value: Dyadic) -> int:
    m, e = value
    return m << e if e >= 0 else m >> -e


def mean(value: Dyadic, count: int) -> float:
    """The float nearest the exact total / count."""
    m, e = value
    try:
        return float(Fraction(m << e, count) if e >= 0 else Fraction(m, count << -e))
    except OverflowError:
        return float("inf") if m > 0 else float("-inf")
