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
