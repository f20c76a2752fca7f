"""Dominance and the Pareto front (archsearch.storage.pareto) against the definition, point by point: the
two-objective sweep, the general front, margins and NaN."""

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.storage.pareto import dominates, pareto_front


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
def test_two_objectives_match_the_definition_with_ties(directions, seed):
    rng = random.Random(seed)
    # A coarse grid makes equal coordinates and equal points common.
    points = [(rng.randint(0, 12) / 4, rng.randint(0, 12) / 4) for _ in range(rng.randint(1, 120))]
    assert pareto_front(points, directions) == _brute_force(points, directions)


# Coarse values so ties are common; 1 to 4 objectives (1 is a sort, 2 the sweep, 3 and 4 the general front).
_POINTS = st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(st.tuples(*[st.integers(0, 5)] * n), max_size=40),
    st.tuples(*[st.sampled_from(["minimize", "maximize"])] * n)))


@settings(max_examples=200, deadline=None)
@given(_POINTS)
def test_any_number_of_objectives_matches_the_definition(case):
    points, directions = case
    assert pareto_front(points, directions) == _brute_force(points, directions)


@settings(max_examples=200, deadline=None)
@given(_POINTS)
def test_dominates_is_the_definition(case):
    points, directions = case
    sign = [1 if d == "minimize" else -1 for d in directions]
    for a in points[:6]:
        for b in points[:6]:
            assert dominates(a, b, directions) == _dominates(a, b, sign)


def test_small_cases():
    assert pareto_front([], ("minimize", "minimize")) == []
    assert pareto_front([(1.0, 1.0)], ("minimize", "minimize")) == [0]
    # (2, 1) is dominated by (1, 1): equal on y, worse on x.
    assert pareto_front([(1.0, 1.0), (2.0, 1.0), (1.0, 1.0), (0.5, 3.0)], ("minimize", "minimize")) == [0, 2, 3]
    # Three objectives: (1, 1, 1) dominates (1, 2, 1); (0, 3, 3) trades off.
    assert pareto_front([(1, 2, 1), (1, 1, 1), (0, 3, 3)], ("minimize",) * 3) == [1, 2]


def test_margins_decide_what_counts_as_better():
    directions = ("minimize", "maximize")
    assert dominates((1.0, 5.0), (1.05, 5.0), directions)
    assert not dominates((1.0, 5.0), (1.05, 5.0), directions, margins=(0.1, 0.0))  # 0.05 better is within 0.1
    assert dominates((1.0, 5.0), (1.2, 5.0), directions, margins=(0.1, 0.0))
    # An infinite margin: must not be worse, never decides.
    assert not dominates((1.0, 6.0), (1.0, 5.0), directions, margins=(0.0, math.inf))
    assert not dominates((0.5, 4.0), (1.0, 5.0), directions, margins=(0.0, math.inf))


def test_nan_neither_dominates_nor_is_dominated():
    nan = float("nan")
    assert not dominates((nan, 0.0), (1.0, 1.0), ("minimize", "minimize"))
    assert not dominates((0.0, 0.0), (nan, 1.0), ("minimize", "minimize"))
    for n in (2, 3):
        points = [(0.0,) * n, (nan,) + (5.0,) * (n - 1), (1.0,) * n]
        assert pareto_front(points, ("minimize",) * n) == [0, 1]


def test_rejects_an_unknown_direction():
    with pytest.raises(ValueError, match="direction 'lower'"):
        pareto_front([(1.0, 2.0)], ("lower", "minimize"))
    with pytest.raises(ValueError, match="direction 'up'"):
        dominates((1.0,), (2.0,), ("up",))
