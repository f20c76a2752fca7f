"""`checks.budget_policy`: plain values over a device's own policy, as `archsearch check` builds it."""

import pytest

from archsearch.checks import BudgetPolicy, budget_policy
from archsearch.errors import UserError


def test_no_value_keeps_the_devices_policy():
    assert budget_policy(BudgetPolicy(buffer_fraction=0.5), None, None) is None


def test_each_value_replaces_only_its_own_field():
    base = BudgetPolicy(buffer_fraction=0.5, reserve_gib=3.0)
    assert (budget_policy(base, 0.9).buffer_fraction, budget_policy(base, 0.9).reserve_gib) == (0.9, 3.0)
    assert (budget_policy(base, reserve_gib=0).buffer_fraction, budget_policy(base, reserve_gib=0).reserve_gib) == (0.5, 0)
    assert budget_policy(None, reserve_gib=2).buffer_fraction == BudgetPolicy().buffer_fraction  # the default's
    assert budget_policy(base, 0.9).source == "command line"


@pytest.mark.parametrize("fraction, reserve", [(0.0, None), (1.5, None), (None, -1.0)])
def test_out_of_range_values_name_the_callers_spelling(fraction, reserve):
    with pytest.raises(UserError, match=r"^--buffer-fraction/--reserve-gib: .*allowed: a fraction in \(0, 1\]"):
        budget_policy(None, fraction, reserve, names=("--buffer-fraction", "--reserve-gib"))
