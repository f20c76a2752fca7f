"""Dominance and Pareto fronts over objective values, in one place for the study's best trials, early stop and
the dashboard's plot (pure Python: the dashboard, which imports storage only, uses it too).

A point dominates another when it is at least as good on every objective and better on one; equal points do not
dominate each other, so they are all on the front.
"""

from __future__ import annotations

from collections.abc import Sequence

DIRECTIONS = ("minimize", "maximize")


def _signs(directions: Sequence[str]) -> tuple[float, ...]:
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: expected 'minimize' or 'maximize'")
    return tuple(1.0 if d == "minimize" else -1.0 for d in directions)


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str],
              margins: Sequence[float] | None = None) -> bool:
    """Whether `a` dominates `b`: no worse on any objective, and better on one by more than its margin (0 by
    default; an infinite margin makes an objective one that must not be worse but never decides)."""
    better = False
    for x, y, sign, margin in zip(a, b, _signs(directions), margins or [0.0] * len(directions), strict=True):
        gain = sign * (y - x)
        if not gain >= 0:  # worse, or NaN (compares with nothing)
            return False
        better = better or gain > margin
    return better


def pareto_front(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices (ascending) of the points no other point dominates.

    In lexicographic order of the sign-adjusted values a dominator comes before every point it dominates, and a
    point dominated by anything is dominated by a point of the front, so each point is compared with the front
    found so far; two objectives need only the best second value so far (O(n log n) for 10,000 trials).
    """
    signs = _signs(directions)
    keyed = [tuple(s * v for s, v in zip(signs, p, strict=True)) for p in points]
    # A NaN compares with nothing: such a point neither dominates nor is dominated, and cannot be sorted.
    unordered = {i for i, k in enumerate(keyed) if any(v != v for v in k)}
    order = sorted((i for i in range(len(keyed)) if i not in unordered), key=keyed.__getitem__)
    front: list[int] = list(unordered)
    if len(signs) == 2:
        best_y, last = float("inf"), None
        for i in order:
            if keyed[i][1] < best_y or keyed[i] == last:
                front.append(i)
                best_y, last = keyed[i][1], keyed[i]
        return sorted(front)
    minimize = ("minimize",) * len(signs)
    for i in order:
        if not any(dominates(keyed[j], keyed[i], minimize) for j in front):
            front.append(i)
    return sorted(front)
