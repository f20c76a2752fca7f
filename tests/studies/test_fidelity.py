"""`archsearch study fidelity`: chosen candidates retrained at k x the budget, short vs long rankings compared,
the measurement stored; bad options exit 2."""

import pytest

from archsearch.cli import main
from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage import rungs as rung_rows
from archsearch.studies import load_study
from archsearch.studies.fidelity import measure_fidelity, scaled_recipe

from studies_helpers import ToyEvaluator, run_study

SPACE = {"parameters": {"d_model": {"type": "categorical", "choices": [32, 64, 128, 256]}}}


class Scaled:
    """The toy evaluator's values, transformed: `sign` -1 reverses every ranking (tau -1)."""

    def __init__(self, recipe, seed, sign, calls):
        self.inner, self.sign, self.recipe, self.seed, self.calls = ToyEvaluator(), sign, recipe, seed, calls

    def __call__(self, spec, callback, *, out_dir=None):
        self.calls.append((spec.d_model, self.recipe.get("steps"), self.seed))
        result = self.inner(spec, callback)
        result["metrics"]["val_loss"] = self.sign * result["metrics"]["val_loss"] + (0.001 if self.seed else 0.0)
        return result


@pytest.mark.parametrize("sign, tau", [(1, 1.0), (-1, -1.0)])
def test_known_agreement_is_measured_and_stored(write_study, sqlite_url, sign, tau):
    path = write_study(n_trials=4, sampler={"type": "grid"}, space=SPACE, constraints={},
                       objectives=["val_loss"], recipe={"steps": 6, "warmup": 2, "eval_every": 2})
    run_study(path, sqlite_url)
    calls = []
    report = measure_fidelity(load_study(path), storage=sqlite_url, factor=4, front=True, random_k=3, seeds=2,
                              evaluator_for=lambda recipe, seed: Scaled(recipe, seed, sign, calls), resamples=200)
    assert [c["chosen_by"] for c in report.candidates] == ["front", "random", "random", "random"]
    stats = report.stats["val_loss"]
    assert stats["n"] == 4 and stats["tau"] == tau and stats["pairwise_accuracy"] == (1.0 if sign > 0 else 0.0)
    assert stats["tau_ci95"] == [tau, tau]
    # four long runs at 4 x 6 steps (warmup and eval_every scaled alike), then one short run with seed 1
    assert [c[1:] for c in calls] == [(24, 0)] * 4 + [(6, 1)]
    assert report.noise["seeds"] == [0, 1] and report.noise["abs_diff"]["val_loss"] == pytest.approx(
        abs(sign * report.noise["values"][0][0] + 0.001 - report.noise["values"][0][0]), abs=1e-9)
    with Database(sqlite_url) as db:
        stored = rung_rows.fidelity_of(db, records.study_by_name(db, "toy").id)
    assert len(stored) == 1 and stored[0].stats == report.stats and stored[0].factor == 4.0
    assert any("Kendall tau" in line for line in report.lines())


def test_scaled_recipe_keeps_the_schedule_shape():
    assert scaled_recipe({"steps": 10, "warmup": 2, "eval_every": 0.25}, 4) == {"steps": 40, "warmup": 8,
                                                                                  "eval_every": 0.25}
    assert scaled_recipe({"tokens": "4k"}, 2) == {"tokens": 8192}
    assert scaled_recipe({"flops": "1P", "warmup": 5}, 3) == {"flops": 3e15, "warmup": 5}  # a FLOPs run's steps vary


def test_the_command_retrains_real_models_and_prints_the_figures(write_study, sqlite_url, capsys):
    from archsearch.studies.evaluate import TrainEvaluator

    task = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
    recipe = {"steps": 3, "batch_size": 4, "seq_len": 16, "eval_every": 3, "warmup": 1}
    path = write_study(n_trials=3, sampler={"type": "grid"}, space={"parameters": {"d_model": {
        "type": "categorical", "choices": [32, 64, 128]}}}, constraints={}, task=task, recipe=recipe,
        objectives=["val_loss", "n_params"])
    run_study(path, sqlite_url, TrainEvaluator(task, recipe, seed=0, device="cpu"))
    capsys.readouterr()
    assert main(["study", "fidelity", str(path), "--storage", sqlite_url, "--factor", "2", "--random", "3",
                 "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "val_loss" in out and "Kendall tau" in out and "n_params" not in out
    with Database(sqlite_url) as db:
        (row,) = rung_rows.fidelity_of(db, records.study_by_name(db, "toy").id)
    assert len(row.candidates) == 3 and row.noise is None
    assert all(c["long"][1] == c["short"][1] for c in row.candidates)  # n_params: exact, not retrained


@pytest.mark.parametrize("args, message", [
    (["--factor", "1"], "--factor 1"), (["--random", "-1"], "--random -1"), (["--seeds", "3"], "--seeds 3"),
    (["--no-front"], "choose candidates")])
def test_bad_options_exit_2(write_study, sqlite_url, capsys, args, message):
    path = write_study(objectives=["val_loss"])
    assert main(["study", "fidelity", str(path), "--storage", sqlite_url, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_study_never_run_is_a_clear_error(write_study, sqlite_url, capsys):
    path = write_study(objectives=["val_loss"])
    assert main(["study", "fidelity", str(path), "--storage", sqlite_url]) == 2
    assert "no stored study 'toy'" in capsys.readouterr().err


def test_a_recipe_seed_is_the_trials_seed_and_the_noise_floor_run_gets_another(write_study, sqlite_url):
    """A recipe's own `seed` wins over the study's in every trial: the long runs must keep it, and the noise-floor
    run must truly change it (before, that run repeated the first seed and its floor read zero)."""
    path = write_study(n_trials=3, sampler={"type": "grid"}, space=SPACE, constraints={},
                       objectives=["val_loss"], recipe={"steps": 6, "warmup": 2, "eval_every": 2, "seed": 7})
    run_study(path, sqlite_url)
    calls, recipes = [], []

    def evaluator_for(recipe, seed):
        recipes.append(recipe)
        return Scaled(recipe, seed, 1, calls)

    report = measure_fidelity(load_study(path), storage=sqlite_url, factor=2, front=True, random_k=2, seeds=2,
                              evaluator_for=evaluator_for, resamples=50)
    assert [c[2] for c in calls] == [7, 7, 7, 8]
    assert [r["seed"] for r in recipes] == [7, 8]  # one evaluator per (recipe, seed): the long one, the noise one
    assert report.noise["seeds"] == [7, 8]


def test_front_and_random_picks_alternate_so_a_time_limit_leaves_both():
    from archsearch.studies.fidelity import _alternate

    assert _alternate(["f1", "f2"], ["r1", "r2", "r3"]) == ["f1", "r1", "f2", "r2", "r3"]
    assert _alternate(["f1", "f2", "f3"], ["r1"]) == ["f1", "r1", "f2", "f3"]
    assert _alternate([], ["r1"]) == ["r1"]
