"""The trials table's filter language, sorting (missing values last in both directions) and paging."""

import datetime as dt

import pytest

from archsearch.dashboard.filters import FilterError, numeric_filter, text_filter
from archsearch.dashboard.table import query
from archsearch.dashboard.views import Objective, StudyView, TrialRow


@pytest.mark.parametrize("expression, kept", [
    ("<2", [1]), ("<=2", [1, 2]), (">2", [3, 1e6]), (">=3", [3, 1e6]), ("=2", [2]), ("2", [2]),
    ("2..3", [2, 3]), ("1e5..2e6", [1e6]), (" < 2 ", [1]),
])
def test_numeric_filters(expression, kept):
    test = numeric_filter("x", expression)
    assert [v for v in [1, 2, 3, 1e6, None, "a"] if test(v)] == kept


@pytest.mark.parametrize("expression", ["<", "abc", "1..", "<<2", "=>3"])
def test_bad_numeric_filters_name_the_column_and_the_forms(expression):
    with pytest.raises(FilterError, match=r"filter on val_loss: .* allowed: <x"):
        numeric_filter("val_loss", expression)


def test_text_filters():
    values = ["feasible", "infeasible", None, "Completed"]
    assert [v for v in values if text_filter("feasible")(v)] == ["feasible", "infeasible"]
    assert [v for v in values if text_filter("=feasible")(v)] == ["feasible"]
    assert [v for v in values if text_filter("!feasible")(v)] == [None, "Completed"]
    assert [v for v in values if text_filter("COMP")(v)] == ["Completed"]


def _row(number, status, loss, fits=True, **params):
    return TrialRow(id=100 + number, number=number, status=status, fits=fits, values=[loss], params=params,
                    n_params=1000 * number, memory_bytes=None, tokens_per_s=None, precision=None, backends={},
                    error=None, wall_time_s=None)


STUDY = StudyView(id=1, name="s", status="finished", created_at=dt.datetime(2026, 1, 1), n_trials_target=None,
                  objectives=[Objective("val_loss", "minimize")], counts={}, best=[], memory=None,
                  param_names=["d_model", "placement"])
ROWS = [_row(0, "completed", 2.0, d_model=64, placement="late"),
        _row(1, "infeasible", None, fits=False, d_model=96, placement="evenly"),
        _row(2, "completed", 1.0, d_model=128, placement="late"),
        _row(3, "completed", 2.0, d_model=96, placement="evenly"),
        _row(4, "failed", None, d_model=64)]


def test_sort_keeps_missing_values_last_and_ties_in_number_order():
    up = query(STUDY, ROWS, sort="obj:0")
    down = query(STUDY, ROWS, sort="obj:0", descending=True)
    assert [r.number for r in up.rows] == [2, 0, 3, 1, 4]
    assert [r.number for r in down.rows] == [0, 3, 2, 1, 4]


def test_numeric_parameters_sort_as_numbers_and_text_filters_apply():
    assert [r.number for r in query(STUDY, ROWS, sort="param:d_model").rows] == [0, 4, 1, 3, 2]
    page = query(STUDY, ROWS, filters={"verdict": "=feasible", "param:placement": "late"})
    assert [r.number for r in page.rows] == [0, 2] and page.matching == 2 and page.total == 5
    assert [r.number for r in query(STUDY, ROWS, filters={"param:d_model": ">=96"}).rows] == [1, 2, 3]


def test_paging():
    page = query(STUDY, ROWS, offset=2, limit=2)
    assert [r.number for r in page.rows] == [2, 3] and page.offset == 2 and page.matching == 5


@pytest.mark.parametrize("kwargs, message", [
    ({"sort": "nope"}, "sort: unknown column 'nope'"),
    ({"filters": {"nope": "1"}}, "filter: unknown column 'nope'"),
    ({"limit": 0}, "limit must be"),
    ({"offset": -1}, "limit must be"),
])
def test_bad_queries_are_user_errors(kwargs, message):
    with pytest.raises(FilterError, match=message):
        query(STUDY, ROWS, **kwargs)
