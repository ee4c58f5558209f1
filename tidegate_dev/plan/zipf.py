"""Sums over a Zipf(s) key distribution of millions of keys, in milliseconds.

The first ranks are summed exactly; the long tail in geometric buckets of ranks whose
probabilities differ by well under 1 %, each bucket standing for its ranks at their mean
probability. Every quantity the capacity model needs (distinct keys among n events, the
hottest key's share, sessions ending per second) is a sum of a smooth function of p.
"""

from __future__ import annotations

import math
from collections.abc import Callable

_HEAD = 10_000  # ranks summed one by one
_RATIO = 1.005  # bucket width in the tail: ranks [a, a * 1.005)


def _power_integral(a: float, b: float, s: float) -> float:
    """Integral of x**-s over [a, b]: the midpoint estimate of a bucket's sum of r**-s."""
    if abs(s - 1.0) < 1e-12:
        return math.log(b / a)
    return (b ** (1 - s) - a ** (1 - s)) / (1 - s)


class Zipf:
    """Key ranks 1..keys with P(rank r) proportional to r**-s (s = 0 is uniform)."""

    def __init__(self, keys: int, s: float) -> None:
        if keys < 1:
            raise ValueError(f"keys must be at least 1, not {keys}")
        if s < 0:
            raise ValueError(f"the Zipf exponent must be >= 0, not {s}")
        self.keys = keys
        self.s = s
        weights: list[tuple[float, float]] = [  # (ranks in the bucket, weight of each)
            (1.0, float(r) ** -s) for r in range(1, min(keys, _HEAD) + 1)
        ]
        a = _HEAD + 1
        while a <= keys:
            b = min(keys + 1, max(a + 1, math.floor(a * _RATIO)))
            count = b - a
            weights.append((float(count), _power_integral(a - 0.5, b - 0.5, s) / count))
            a = b
        total = sum(c * w for c, w in weights)
        self._buckets = [(c, w / total) for c, w in weights]

    def p(self, rank: int) -> float:
        """Probability of the key of `rank` (1 is the hottest)."""
        return self._buckets[0][1] * float(rank) ** -self.s

    def total(self, f: Callable[[float], float]) -> float:
        """Sum of f(p) over every key."""
        return sum(c * f(p) for c, p in self._buckets)

    def distinct(self, draws: float) -> float:
        """Expected distinct keys among `draws` independent events."""
        if draws <= 0:
            return 0.0
        # 1 - (1 - p)**draws, the chance a key appears at least once
        return self.total(lambda p: -math.expm1(draws * math.log1p(-p)) if p < 1 else 1.0)

    def ranks_above(self, share: float) -> int:
        """How many keys carry more than `share` of the events each."""
        if share >= self.p(1):
            return 0
        if self.s == 0:
            return self.keys
        # p(r) > share  <=>  r < (p(1) / share) ** (1 / s)
        return min(self.keys, math.ceil((self.p(1) / share) ** (1 / self.s)) - 1)
