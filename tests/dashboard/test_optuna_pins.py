"""The dashboard's reliance on Optuna internals, pinned against the installed Optuna (issue 17.4).

For speed the dashboard reads Optuna's tables with plain SQL (optuna_source.py, progress.py), hands Optuna's
analysis functions its own read-only `BaseStorage` (optuna_source._FrozenStorage), and turns the text of a
PED-ANOVA warning into a caveat (importance.py). Each test here fails, naming what changed, when an Optuna
release moves one of those: a table or column, an enum name stored as text, an abstract storage method, the
warning's wording."""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import warnings

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage
from optuna.storages._rdb import models as optuna_models
from optuna.study import StudyDirection
from optuna.trial import TrialState, create_trial

import archsearch.dashboard
from archsearch.dashboard.importance import param_importance
from archsearch.dashboard.optuna_source import OptunaSource, _FrozenStorage, frozen_study
from archsearch.dashboard.readonly import open_readonly

optuna.logging.set_verbosity(optuna.logging.WARNING)

OPTUNA_TABLES = optuna_models.BaseModel.metadata.tables


def _dashboard_table_clauses() -> dict[str, sa.TableClause]:
    """Every lightweight `sa.table(...)` a dashboard module declares at module level: the raw SQL over Optuna's
    tables (our own tables are ORM models, `sa.Table`, and are not collected)."""
    found = {}
    for info in pkgutil.iter_modules(archsearch.dashboard.__path__):
        module = importlib.import_module(f"archsearch.dashboard.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, sa.TableClause) and not isinstance(value, sa.Table):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_table_and_column_read_by_raw_sql_exists_in_optunas_schema():
    clauses = _dashboard_table_clauses()
    read = {clause.name for clause in clauses.values()}
    # the scan must see what the dashboard reads today, or this test would pass on nothing
    assert {"studies", "study_directions", "trials", "trial_params", "trial_values", "trial_intermediate_values",
            "trial_user_attributes"} <= read, read
    for where, clause in clauses.items():
        assert clause.name in OPTUNA_TABLES, f"{where}: Optuna {optuna.__version__} has no table {clause.name!r}"
        columns = set(OPTUNA_TABLES[clause.name].columns.keys())
        missing = [c.name for c in clause.columns if c.name not in columns]
        assert not missing, f"{where}: Optuna {optuna.__version__}'s {clause.name} has no column(s) {missing}"


def test_enum_names_compared_as_text_are_optunas():
    """optuna_source compares states as text and reads value types and directions by member name."""
    assert {"INF_POS", "INF_NEG", "FINITE"} == {e.name for e in optuna_models.TrialValueModel.TrialValueType}
    assert TrialState.COMPLETE.name == "COMPLETE"
    assert {d.name for d in StudyDirection} >= {"MINIMIZE", "MAXIMIZE"}


def _fields(trial):
    return (trial.number, trial._trial_id, trial.state, list(trial.params.items()), trial.distributions,
            trial.values, trial.datetime_start, trial.datetime_complete)


@pytest.fixture
def rdb_study(tmp_path):
    """A study written by Optuna's own RDB storage: every parameter kind, infinite values, non-complete trials."""
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=url, study_name="pins", directions=["minimize", "maximize"])
    dists = {"lr": FloatDistribution(1e-4, 1e-1, log=True), "layers": IntDistribution(1, 8),
             "kind": CategoricalDistribution(["mamba2", "attention", None]), "frac": FloatDistribution(0, 1, step=0.25)}
    rows = [({"lr": 1e-3, "layers": 2, "kind": "mamba2", "frac": 0.5}, [1.5, 2.0]),
            ({"lr": 3e-2, "layers": 8, "kind": None, "frac": 0.0}, [math.inf, -math.inf]),
            ({"lr": 1e-4, "layers": 1, "kind": "attention", "frac": 1.0}, [-math.inf, math.inf]),
            ({"layers": 4, "lr": 2e-3, "kind": "attention", "frac": 0.25}, [0.25, -3.0])]  # another param order
    for params, values in rows:
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=values, params=params,
                                     distributions={k: dists[k] for k in params}))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"lr": 1e-3}, distributions={"lr": dists["lr"]}))
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"layers": 3},
                                 distributions={"layers": dists["layers"]}, intermediate_values={1: 0.5}))
    return url, study


def test_lean_read_matches_optunas_storage_for_every_kind_of_value(rdb_study):
    url, study = rdb_study
    every = [t._trial_id for t in study.get_trials(deepcopy=False)]
    source = OptunaSource(url, open_readonly(url))
    directions, fast = source.completed_trials("pins", every)
    ref_directions, reference = source.completed_trials_reference("pins", every)
    assert directions == ref_directions == [StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE]
    assert [_fields(t) for t in fast] == [_fields(t) for t in reference]
    assert len(fast) == 4 and fast[1].values == [math.inf, -math.inf]  # infinities come back as such


def test_intermediate_values_and_user_attrs_read_as_optuna_wrote_them(rdb_study):
    """progress.py's raw reads of a running trial's curve: the same rows Optuna's storage gives back."""
    from archsearch.dashboard import progress

    url, study = rdb_study
    trial = study.ask()
    for step, value in ((1, 3.0), (2, 2.5), (5, 1.25)):
        study._storage.set_trial_intermediate_value(trial._trial_id, step, value)  # as optuna_attrs writes them
    trial.set_user_attr("curve_metric", "val_loss")
    engine = open_readonly(url)
    with engine.connect() as conn:
        points = dict(conn.execute(sa.select(progress._values.c.step, progress._values.c.intermediate_value)
                                   .where(progress._values.c.trial_id == trial._trial_id)).all())
        attrs = dict(conn.execute(sa.select(progress._attrs.c.key, progress._attrs.c.value_json)
                                  .where(progress._attrs.c.trial_id == trial._trial_id)).all())
    stored = study._storage.get_trial(trial._trial_id)
    assert points == stored.intermediate_values == {1: 3.0, 2: 2.5, 5: 1.25}
    assert {k: json.loads(v) for k, v in attrs.items()} == stored.user_attrs


def test_frozen_storage_defines_every_abstract_method_of_optunas_base_storage():
    own = {name for klass in _FrozenStorage.__mro__ if klass is not BaseStorage and issubclass(klass, BaseStorage)
           for name in vars(klass)}
    missing = sorted(BaseStorage.__abstractmethods__ - own)
    assert not missing, f"Optuna {optuna.__version__}'s BaseStorage has abstract methods the dashboard's lacks"
    assert not _FrozenStorage.__abstractmethods__


def test_frozen_study_reads_as_optunas_in_memory_study_and_refuses_writes():
    memory = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(0))
    memory.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("n", 1, 4)), n_trials=12)
    trials = memory.get_trials(deepcopy=True, states=(TrialState.COMPLETE,))
    frozen = frozen_study("s", memory.directions, trials)
    assert frozen.directions == memory.directions and frozen.study_name == "s"
    assert [t.number for t in frozen.best_trials] == [t.number for t in memory.best_trials]
    assert [_fields(t) for t in frozen.get_trials(states=(TrialState.COMPLETE,))] == [_fields(t) for t in trials]
    assert frozen.get_trials(states=(TrialState.RUNNING,)) == []
    assert frozen.trials_dataframe().shape == memory.trials_dataframe().shape
    with pytest.raises(NotImplementedError, match="read-only"):
        frozen.ask()


def _sparse_regime_study(sparse: bool) -> optuna.Study:
    """Ten trials over x and y; with `sparse`, one trial's x has a distribution of its own (a regime of one)."""
    study = optuna.create_study()
    for i in range(10):
        x_dist = FloatDistribution(0, 2) if sparse and i == 0 else FloatDistribution(0, 1)
        params = {"x": (i % 5) / 5, "y": ((i * 3) % 10) / 10}
        study.add_trial(create_trial(value=params["x"] + 0.1 * params["y"], params=params,
                                     distributions={"x": x_dist, "y": FloatDistribution(0, 1)}))
    return study


def test_a_sparse_regime_warning_becomes_a_caveat_naming_the_parameter():
    """importance.py reads PED-ANOVA's warning text ("Some regimes for parameter `x` have less than 2 trials"):
    the caveat appears exactly when Optuna warns, and names the parameter."""
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_param_importances(_sparse_regime_study(True), evaluator=PedAnovaImportanceEvaluator())
    texts = [str(w.message) for w in caught]
    assert any("less than 2 trials" in t and "`x`" in t for t in texts), texts  # Optuna's wording, as read
    caveat = param_importance(_sparse_regime_study(True)).reason
    assert caveat.startswith("few trials for some values of x:"), caveat
    assert param_importance(_sparse_regime_study(False)).reason == ""
