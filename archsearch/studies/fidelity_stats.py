"""How far a short (proxy) ranking agrees with a long one: Kendall's tau-b and pairwise decision accuracy, each
with a bootstrap 95% interval over candidates. Pure statistics (no storage, no torch).

Pairwise decision accuracy: over the pairs the long run orders strictly, the share the short run orders the same
way (a tie in the short run counts half: a coin flip decides it). It is what a search needs: "does the proxy pick
the better of two candidates". Tau-b is (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y)), as
scipy.stats.kendalltau computes it by default; our own O(n^2) version is used (and tested against scipy where it is
installed), because the candidate counts here are tens, not thousands.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Agreement:
    n: int  # candidates with both values
    tau: float | None  # Kendall's tau-b (None: undefined, e.g. fewer than 2 candidates or all tied)
    tau_ci: tuple[float, float] | None
    accuracy: float | None  # pairwise decision accuracy (None: the long run orders no pair)
    accuracy_ci: tuple[float, float] | None

    def to_dict(self) -> dict:
        return {"n": self.n, "tau": self.tau, "tau_ci95": list(self.tau_ci) if self.tau_ci else None,
                "pairwise_accuracy": self.accuracy,
                "pairwise_accuracy_ci95": list(self.accuracy_ci) if self.accuracy_ci else None}


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _check(short: Sequence[float], long: Sequence[float]) -> None:
    if len(short) != len(long):
        raise ValueError(f"short and long rankings differ in length ({len(short)} vs {len(long)})")
    for name, values in (("short", short), ("long", long)):
        bad = [v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v)]
        if bad:
            raise ValueError(f"{name} values must be finite numbers; got {bad[0]!r}")


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired samples; None where it is undefined (n < 2, or one side all tied)."""
    _check(x, y)
    n = len(x)
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            sx, sy = _sign(x[i] - x[j]), _sign(y[i] - y[j])
            if sx == 0:
                ties_x += 1
            if sy == 0:
                ties_y += 1
            if sx and sy:
                concordant += sx == sy
                discordant += sx != sy
    pairs = n * (n - 1) // 2
    denominator = math.sqrt((pairs - ties_x) * (pairs - ties_y))
    return (concordant - discordant) / denominator if denominator > 0 else None


def pairwise_accuracy(short: Sequence[float], long: Sequence[float]) -> float | None:
    """Share of the pairs the long values order strictly that the short values order the same way (a short tie
    counts 1/2); None when the long values order no pair. Both are read "smaller is better" or both "larger":
    only agreement of order matters, so no direction is needed."""
    _check(short, long)
    agree, total = 0.0, 0
    for i in range(len(long)):
        for j in range(i + 1, len(long)):
            sl = _sign(long[i] - long[j])
            if sl == 0:
                continue
            total += 1
            ss = _sign(short[i] - short[j])
            agree += 1.0 if ss == sl else 0.5 if ss == 0 else 0.0
    return agree / total if total else None


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of an ascending list."""
    position = q * (len(sorted_values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def bootstrap_ci(statistic, short: Sequence[float], long: Sequence[float], *, resamples: int = 2000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `statistic(short, long)` over candidates resampled with replacement;
    resamples where the statistic is undefined are skipped. None when fewer than half are defined."""
    n = len(short)
    if n < 2:
        return None
    rng = random.Random(seed)
    values = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        value = statistic([short[i] for i in picks], [long[i] for i in picks])
        if value is not None:
            values.append(value)
    if len(values) < resamples / 2:
        return None
    values.sort()
    tail = (1 - level) / 2
    return (_percentile(values, tail), _percentile(values, 1 - tail))


def agreement(short: Sequence[float], long: Sequence[float], *, resamples: int = 2000, seed: int = 0) -> Agreement:
    """Tau-b and pairwise accuracy of the short values against the long ones, each with its bootstrap 95% CI."""
    _check(short, long)
    short, long = list(map(float, short)), list(map(float, long))
    return Agreement(len(short), kendall_tau(short, long),
                     bootstrap_ci(kendall_tau, short, long, resamples=resamples, seed=seed),
                     pairwise_accuracy(short, long),
                     bootstrap_ci(pairwise_accuracy, short, long, resamples=resamples, seed=seed + 1))
