"""Parameter importance: guarded for too few trials, and right for a maximised objective."""

import optuna

from archsearch.dashboard.importance import MIN_TRIALS, param_importance

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(n_trials):
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=0))
    # Objective 0 (minimised) is y. Objective 1 (maximised) is high only where x > 0.8 and low only where
    # y < 0.2: read the right way round, its best trials are explained by x; read the wrong way, by y.
    def objectives(trial):
        x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
        return y, 10 * max(x - 0.8, 0.0) - 10 * max(0.2 - y, 0.0)

    study.optimize(objectives, n_trials=n_trials)
    return study


def test_too_few_trials_give_a_reason_not_an_error():
    result = param_importance(_study(MIN_TRIALS - 1), 0)
    assert result.values == {} and f"at least {MIN_TRIALS} completed trials" in result.reason
    assert param_importance(optuna.create_study(), 0).values == {}


def test_each_objective_is_explained_by_its_own_parameter():
    study = _study(60)
    first, second = param_importance(study, 0), param_importance(study, 1)
    assert max(first.values, key=first.values.get) == "y"
    assert max(second.values, key=second.values.get) == "x"


# ---------------------------------------------------------------------------------------------------------------
# The server's path: one lean read of Optuna's tables per change of the study, shared by every objective and by
# every request that asks meanwhile.

import threading  # noqa: E402

import pytest  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from archsearch.dashboard import create_app  # noqa: E402
from archsearch.dashboard.importance import Importance, ImportanceCache, all_param_importances  # noqa: E402
from archsearch.dashboard.optuna_source import OptunaSource, frozen_study  # noqa: E402
from archsearch.dashboard.readonly import open_readonly  # noqa: E402


def _fields(trial):
    return (trial.number, trial._trial_id, trial.state, list(trial.params.items()), trial.distributions,
            trial.values, trial.datetime_start, trial.datetime_complete)


def test_lean_read_of_optunas_tables_matches_optunas_own_storage(study_url, stored):
    study, trials = stored
    completed = [t.optuna_trial_id for t in trials if t.status == "completed"]
    source = OptunaSource(study_url, open_readonly(study_url))
    directions, fast = source.completed_trials(study.name, completed)
    ref_directions, reference = source.completed_trials_reference(study.name, completed)
    assert directions == ref_directions and len(directions) == len(study.objectives)
    assert len(fast) == len(completed) > 0
    assert [_fields(t) for t in fast] == [_fields(t) for t in reference]
    # Optuna also holds the infeasible candidates as COMPLETE trials; asked for all ids, the read keeps only those.
    every = [t.optuna_trial_id for t in trials]
    assert [_fields(t) for t in source.completed_trials(study.name, every)[1]] == \
        [_fields(t) for t in source.completed_trials_reference(study.name, every)[1]]


def test_frozen_study_gives_the_importance_of_optunas_in_memory_copy():
    study = _study(60)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials(trials)
    assert all_param_importances(frozen_study("s", study.directions, trials)) == all_param_importances(copy)
    with pytest.raises(NotImplementedError, match="read-only"):
        frozen_study("s", study.directions, trials).add_trial(trials[0])


def test_importance_for_every_objective_loads_the_trials_once(study_url, stored):
    app = create_app(study_url)
    source = app.state.importance.source
    loads = []
    real = source.completed_copy
    source.completed_copy = lambda *args: loads.append(args) or real(*args)
    client = TestClient(app)
    study, _ = stored
    bodies = [client.get(f"/api/study/{study.id}/importance?objective={i}").json()
              for i in range(len(study.objectives))] * 2
    assert len(study.objectives) == 2 and len(loads) == 1
    assert all(b["figure"] or b["reason"] for b in bodies)


class _FakeRepo:
    def __init__(self):
        self.stamp_value, self.arrived = "a", 0
        self._lock = threading.Lock()

    def stamp(self, study_id):
        with self._lock:
            self.arrived += 1
        return self.stamp_value

    def study(self, study_id):
        from archsearch.dashboard.views import Objective

        return type("S", (), {"name": "s", "objectives": [Objective("a", "minimize"), Objective("b", "maximize")]})

    def completed_optuna_ids(self, study_id):
        return list(range(10))


class _GatedSource:
    """Blocks each load until `go` is set; counts them."""

    def __init__(self):
        self.loads, self.started, self.go = 0, threading.Event(), threading.Event()
        self.fail = False

    def completed_copy(self, name, ids):
        self.loads += 1
        self.started.set()
        assert self.go.wait(30)
        if self.fail:
            raise RuntimeError("boom")
        return _study(20)


def test_concurrent_requests_share_one_computation():
    repo, source = _FakeRepo(), _GatedSource()
    cache = ImportanceCache(repo, source)
    answers = {}
    threads = [threading.Thread(target=lambda i=i: answers.__setitem__(i, cache(1, i % 2))) for i in range(4)]
    threads[0].start()
    assert source.started.wait(30)
    for t in threads[1:]:
        t.start()
    while repo.arrived < 4:  # every request has read the stamp while the first one computes
        threading.Event().wait(0.01)
    source.go.set()
    for t in threads:
        t.join(30)
    assert source.loads == 1 and len(answers) == 4
    assert all(isinstance(a, Importance) and a.values for a in answers.values())
    assert answers[0] is answers[2] and answers[1] is answers[3]
    assert cache(1, 0) is answers[0] and source.loads == 1  # kept for this stamp
    repo.stamp_value = "b"  # the study changed
    cache(1, 1)
    assert source.loads == 2


def test_a_failed_computation_is_not_kept():
    repo, source = _FakeRepo(), _GatedSource()
    source.go.set()
    source.fail = True
    cache = ImportanceCache(repo, source)
    with pytest.raises(RuntimeError, match="boom"):
        cache(1, 0)
    source.fail = False
    assert cache(1, 0).values and source.loads == 2


def test_lean_read_matches_optuna_on_sqlite_and_postgresql(storage_url):
    """Optuna's enum and float columns come back differently per database (PostgreSQL gives enum members and
    its own float handling): the lean read must give the trials Optuna's storage gives on both."""
    from archsearch.storage.urls import full_url, parse

    study = optuna.create_study(storage=full_url(parse(storage_url)), study_name="lean-read",
                                directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(seed=1))

    def objectives(trial):
        x = trial.suggest_float("x", 0, 1)
        kind = trial.suggest_categorical("kind", ["mamba", "attention"])
        if x > 0.9:
            raise optuna.TrialPruned()
        return (float("inf") if x < 0.05 else x), (1.0 if kind == "mamba" else -x)

    study.optimize(objectives, n_trials=25)
    ids = [t._trial_id for t in study.trials]
    source = OptunaSource(storage_url, open_readonly(storage_url))
    directions, fast = source.completed_trials("lean-read", ids)
    ref_directions, reference = source.completed_trials_reference("lean-read", ids)
    assert directions == ref_directions == [optuna.study.StudyDirection.MINIMIZE, optuna.study.StudyDirection.MAXIMIZE]
    assert len(fast) == sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) > 0
    assert [_fields(t) for t in fast] == [_fields(t) for t in reference]
