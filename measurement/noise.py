"""When two measured figures differ by more than the run's own noise (for the comparison's reading).

Each server's load is sent in several rounds; a figure (requests/s, p50 latency) then has one value per round. Two
servers differ measurably only when every round of one beats every round of the other (their ranges do not
overlap) and their medians differ by more than a minimum share. With 5 rounds each, two servers that are the same
have ranges that do not overlap by chance 2 times in 252 (about 1 %); the minimum share guards against the slower
drift of a shared machine's load between stacks, which the rounds of one server (sent back to back) cannot show.
Plain functions, no ZenML: tests/test_compare_reading.py checks them on synthetic measurements.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Spread:
    """One figure's values over the rounds: their median and range."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: list[float] | tuple[float, ...]) -> Spread:
        present = tuple(float(v) for v in values if v is not None and not math.isnan(v))
        if not present:
            raise ValueError("no measured values (every round failed or none was run)")
        return cls(present)

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def text(self, digits: int = 0, unit: str = "") -> str:
        """`128/s (101–140 over 5 rounds)`; one round: just the value."""
        value = f"{self.median:.{digits}f}{unit}"
        if len(self.values) < 2:
            return value
        return f"{value} ({self.low:.{digits}f}–{self.high:.{digits}f} over {len(self.values)} rounds)"


@dataclass(frozen=True)
class Difference:
    """How `first` compares with `second` on one figure."""

    measurable: bool
    ratio: float  # median of first / median of second
    why: str  # why it is (or is not) a measurable difference, in words


def chance_of_separation(rounds_a: int, rounds_b: int) -> float:
    """The chance that the rounds of two identical servers do not overlap at all (either way round): every
    ordering of the pooled rounds is equally likely, and 2 of the C(a+b, a) orderings separate them."""
    return 2 / math.comb(rounds_a + rounds_b, rounds_a)


def compare_spreads(first: Spread, second: Spread, higher_is_better: bool, min_share: float) -> Difference:
    """Is `first` measurably better or worse than `second`? Only when their rounds do not overlap and their
    medians differ by more than `min_share` (0.1: 10 %) of the smaller one."""
    ratio = first.median / second.median if second.median else math.inf
    separated = first.low > second.high or second.low > first.high
    smaller = min(first.median, second.median)
    gap = abs(first.median - second.median) / smaller if smaller else math.inf
    if len(first.values) < 2 or len(second.values) < 2:
        return Difference(False, ratio, "a single round shows no spread to compare against")
    if not separated:
        return Difference(False, ratio, "their rounds overlap")
    if gap <= min_share:
        return Difference(False, ratio, f"the rounds separate, but by {gap:.0%}, within the {min_share:.0%} margin")
    better = (first.median > second.median) == higher_is_better
    return Difference(True, ratio, f"{'better' if better else 'worse'} in every round, by {gap:.0%} at the median")


def rule(rounds: int, min_share: float) -> str:
    """The rule in words, with the chance that it names a difference between two servers that are the same."""
    if rounds < 2:
        return "One round per level: no spread to judge by, so no serving difference is named."
    chance = chance_of_separation(rounds, rounds)
    return (
        f"A serving difference is named only beyond this run's own noise: every one of {rounds} rounds of one server "
        f"beats every round of the other, and their medians differ by more than {min_share:.0%} (two identical "
        f"servers separate like that by chance {chance:.1%} of the time)."
    )


@dataclass(frozen=True)
class Ranking:
    """Servers on one figure: the best, those within its noise (tied), and those measurably behind."""

    best: str
    tied: list[str]
    behind: list[tuple[str, Difference]]


def rank(spreads: dict[str, Spread], higher_is_better: bool, min_share: float) -> Ranking:
    """The server with the best median, the ones not measurably different from it, and the rest."""
    if not spreads:
        raise ValueError("nothing to rank")
    order = sorted(spreads, key=lambda name: spreads[name].median, reverse=higher_is_better)
    best = order[0]
    tied, behind = [], []
    for name in order[1:]:
        difference = compare_spreads(spreads[name], spreads[best], higher_is_better, min_share)
        (behind.append((name, difference)) if difference.measurable else tied.append(name))
    return Ranking(best, tied, behind)
