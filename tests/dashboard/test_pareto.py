"""The O(n log n) Pareto front against the definition, checked point by point."""

import random

import pytest

from archsearch.dashboard.pareto import pareto_front


def _dominates(a, b, sign):
    better_or_equal = all(s * x <= s * y for x, y, s in zip(a, b, sign))
    strictly = any(s * x < s * y for x, y, s in zip(a, b, sign))
    return better_or_equal and strictly


def _brute_force(points, directions):
    sign = [1 if d == "minimize" else -1 for d in directions]
    return [i for i, p in enumerate(points) if not any(_dominates(q, p, sign) for q in points)]


@pytest.mark.parametrize("directions", [("minimize", "minimize"), ("minimize", "maximize"),
                                        ("maximize", "minimize"), ("maximize", "maximize")])
@pytest.mark.parametrize("seed", range(5))
def test_matches_the_definition_with_ties(directions, seed):
    rng = random.Random(seed)
    # A coarse grid makes equal coordinates and equal points common.
    points = [(rng.randint(0, 12) / 4, rng.randint(0, 12) / 4) for _ in range(rng.randint(1, 120))]
    assert pareto_front(points, directions) == _brute_force(points, directions)


def test_small_cases():
    assert pareto_front([], ("minimize", "minimize")) == []
    assert pareto_front([(1.0, 1.0)], ("minimize", "minimize")) == [0]
    # (2, 1) is dominated by (1, 1): equal on y, worse on x.
    assert pareto_front([(1.0, 1.0), (2.0, 1.0), (1.0, 1.0), (0.5, 3.0)], ("minimize", "minimize")) == [0, 2, 3]


def test_rejects_an_unknown_direction():
    with pytest.raises(ValueError, match="direction 'lower'"):
        pareto_front([(1.0, 2.0)], ("lower", "minimize"))
