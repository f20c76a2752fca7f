"""Proxy-fidelity statistics on synthetic rankings whose tau and pairwise accuracy are known by hand."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.studies.fidelity_stats import agreement, bootstrap_ci, kendall_tau, pairwise_accuracy


def test_identical_and_reversed_rankings():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert kendall_tau(x, x) == 1.0
    assert kendall_tau(x, x[::-1]) == -1.0
    assert pairwise_accuracy(x, x) == 1.0
    assert pairwise_accuracy(x, x[::-1]) == 0.0


def test_one_swapped_pair_by_hand():
    # 4 items, one adjacent swap: 5 concordant, 1 discordant of 6 pairs -> tau = 4/6, accuracy = 5/6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    assert pairwise_accuracy([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(5 / 6)


def test_ties_by_hand():
    # x has one tie (items 0, 1); y none. Pairs: (0,1) tie in x; the other 5 concordant.
    # tau-b = 5 / sqrt((6 - 1) * 6) ; accuracy counts the short tie as 1/2: (5 + 0.5) / 6
    x, y = [1, 1, 2, 3], [1, 2, 3, 4]
    assert kendall_tau(x, y) == pytest.approx(5 / (5 * 6) ** 0.5)
    assert pairwise_accuracy(x, y) == pytest.approx(5.5 / 6)
    # a tie in the long run is no decision: only 5 pairs count, all agree
    assert pairwise_accuracy(y, x) == 1.0


def test_undefined_cases():
    assert kendall_tau([1.0], [2.0]) is None
    assert kendall_tau([1, 1, 1], [1, 2, 3]) is None
    assert pairwise_accuracy([1, 2, 3], [5, 5, 5]) is None
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="finite"):
        pairwise_accuracy([1, float("nan")], [1, 2])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=2, max_size=12))
def test_tau_matches_scipy(pairs):
    stats = pytest.importorskip("scipy.stats")
    x, y = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
    ours = kendall_tau(x, y)
    theirs = stats.kendalltau(x, y).statistic
    if ours is None:
        assert theirs != theirs  # scipy says nan where tau-b is undefined
    else:
        assert ours == pytest.approx(theirs, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.permutations(list(range(7))))
def test_accuracy_is_affine_in_tau_without_ties(perm):
    # with no ties, accuracy = (1 + tau) / 2
    x = list(map(float, range(7)))
    y = list(map(float, perm))
    assert pairwise_accuracy(x, y) == pytest.approx((1 + kendall_tau(x, y)) / 2)


def test_bootstrap_interval_covers_the_noisy_truth_and_narrows_with_n():
    rng = random.Random(3)
    long = [float(i) for i in range(40)]
    short = [v + rng.gauss(0, 8) for v in long]  # a noisy proxy
    result = agreement(short, long, resamples=500)
    low, high = result.tau_ci
    assert low < result.tau < high
    assert 0.2 < result.tau < 0.9
    exact = agreement(long, long, resamples=200)
    assert exact.tau_ci == (1.0, 1.0) and exact.accuracy_ci == (1.0, 1.0)
    small = agreement(short[:10], long[:10], resamples=500)
    assert (small.tau_ci[1] - small.tau_ci[0]) > (high - low)
    assert bootstrap_ci(kendall_tau, [1.0], [1.0]) is None


def test_agreement_dict_names_its_fields():
    d = agreement([3, 1, 2], [3, 2, 1], resamples=100).to_dict()
    assert set(d) == {"n", "tau", "tau_ci95", "pairwise_accuracy", "pairwise_accuracy_ci95"}
    assert d["n"] == 3 and d["tau"] == pytest.approx(1 / 3)
    # every pair by hand: (0,1) agree, (0,2) agree, (1,2) disagree
    assert d["pairwise_accuracy"] == pytest.approx(2 / 3)
