"""The runner end to end on a SQLite file, with a real tiny numpy training injected (studies_helpers)."""

import math

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.storage import Database, StudyMismatchError
from archsearch.storage import records

from studies_helpers import ToyEvaluator, run_study


def _rows(url, name="toy"):
    with Database(url) as db:
        study = records.study_by_name(db, name)
        return records.trials_of(db, study.id)


def test_infeasible_candidates_are_recorded_never_trained_and_constrain_the_sampler(write_study, sqlite_url):
    evaluator = ToyEvaluator()
    summary = run_study(write_study(n_trials=10), sqlite_url, evaluator)
    rows = _rows(sqlite_url)
    assert len(rows) == 10 and sum(summary.counts.values()) == 10
    infeasible = [r for r in rows if r.status == "infeasible"]
    trained = [r for r in rows if r.status == "completed"]
    assert infeasible and trained and evaluator.calls == len(trained)
    for r in infeasible:
        key = "budget:a10g@2Mx16"
        assert r.fits is False and r.budget[key]["total_bytes"] > r.budget[key]["budget_bytes"]
        assert r.constraints[key] > 0 and "GiB budget" in r.error and r.curve is None
        assert r.objectives == [pytest.approx(math.log(64))]  # an untrained model's loss: a uniform guess
    study = optuna.load_study(study_name="toy", storage=sqlite_url)
    by_number = {t.number: t for t in study.trials}
    for r in rows:
        trial = by_number[r.number]
        assert trial.state == TrialState.COMPLETE  # infeasible trials complete, so samplers see the constraints
        assert (max(trial.constraints.values()) > 0) == (r.status == "infeasible")
    assert study.best_trial.number in {r.number for r in trained}  # Optuna never picks an infeasible trial
    assert all(r.spec is not None and len(r.spec_hash) == 16 and r.pattern for r in rows)
    assert all(r.overhead_s is not None and r.wall_time_s >= r.train_time_s for r in rows)


def test_failures_are_recorded_and_the_study_goes_on(write_study, sqlite_url):
    evaluator = ToyEvaluator(fail_when=lambda spec: spec.d_model == 96, diverge_when=lambda spec: spec.d_model == 128)
    summary = run_study(write_study(n_trials=12, constraints={}), sqlite_url, evaluator)
    rows = _rows(sqlite_url)
    assert len(rows) == 12
    by_status = {}
    for r in rows:
        by_status.setdefault(r.status, []).append(r)
        assert {"completed": 64, "failed": 96, "diverged": 128}[r.status] == r.spec["d_model"]
    assert set(by_status) == {"completed", "failed", "diverged"}
    failed = by_status["failed"][0]
    assert failed.error == "out of memory" and "RuntimeError: CUDA out of memory" in failed.traceback
    assert by_status["diverged"][0].error.startswith("diverged: non-finite loss")
    states = {t.number: t.state for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    assert all(states[r.number] == TrialState.FAIL for r in by_status["failed"] + by_status["diverged"])


def test_rerun_resumes_to_the_target_and_refuses_another_space(write_study, sqlite_url, tmp_path):
    path = write_study(n_trials=4)
    run_study(path, sqlite_url)
    run_study(path, sqlite_url)  # nothing left to do
    assert len(_rows(sqlite_url)) == 4
    run_study(path, sqlite_url, n_trials=7)  # a bigger target tops up
    assert [r.number for r in _rows(sqlite_url)] == list(range(7))

    other = write_study("other.yaml", space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}})
    before = [(r.number, r.status) for r in _rows(sqlite_url)]
    with pytest.raises(StudyMismatchError, match=r"space\.parameters\.d_model\.choices \[64, 96, 128\] -> \[64\]"):
        run_study(other, sqlite_url)
    assert [(r.number, r.status) for r in _rows(sqlite_url)] == before
    assert len(optuna.load_study(study_name="toy", storage=sqlite_url).trials) == 7


class _InterruptAt(ToyEvaluator):
    def __init__(self, at_call):
        super().__init__()
        self.at_call = at_call

    def __call__(self, spec, callback, *, out_dir=None):
        if self.calls + 1 == self.at_call:
            self.calls += 1
            raise KeyboardInterrupt
        return super().__call__(spec, callback, out_dir=out_dir)


def test_ctrl_c_stops_cleanly_and_the_rerun_retries_the_same_parameters(write_study, sqlite_url):
    path = write_study(n_trials=5, constraints={})
    summary = run_study(path, sqlite_url, _InterruptAt(3))
    assert summary.interrupted
    rows = _rows(sqlite_url)
    interrupted = [r for r in rows if r.status == "interrupted"]
    assert len(rows) == 3 and len(interrupted) == 1
    study = optuna.load_study(study_name="toy", storage=sqlite_url)
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].params == interrupted[0].params

    summary = run_study(path, sqlite_url)
    rows = _rows(sqlite_url)
    retried = [r for r in rows if r.retry_of == interrupted[0].number]
    assert len(retried) == 1 and retried[0].status == "completed"
    assert {k: v for k, v in retried[0].params.items()} == interrupted[0].params
    assert sum(r.status == "completed" for r in rows) == 5  # the target counts the retry once


def test_single_objective_pruning(write_study, sqlite_url):
    path = write_study(n_trials=10, constraints={}, pruner={"type": "median", "n_startup_trials": 2},
                       sampler={"type": "tpe", "n_startup_trials": 3})
    run_study(path, sqlite_url, ToyEvaluator(steps=10, eval_every=2))
    rows = _rows(sqlite_url)
    pruned = [r for r in rows if r.status == "pruned"]
    assert pruned and all(r.curve and r.error.startswith("pruned at step") for r in pruned)
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    assert all(trials[r.number].state == TrialState.PRUNED for r in pruned)
    assert all(trials[r.number].intermediate_values for r in rows if r.status == "completed")


def test_multi_objective_early_stop_stops_dominated_trials(write_study, sqlite_url):
    path = write_study(n_trials=14, constraints={}, objectives=["val_loss", "n_params"],
                       early_stop={"min_completed": 2, "patience": 1, "margin": 0.0})
    evaluator = ToyEvaluator(steps=8, eval_every=2)
    run_study(path, sqlite_url, evaluator)
    rows = _rows(sqlite_url)
    stopped = [r for r in rows if r.status == "stopped"]
    completed = {r.number: r for r in rows if r.status == "completed"}
    assert stopped, [r.status for r in rows]
    for r in stopped:
        # The stopping rule's claim, checked from the stored rows: some completed trial was at least as small
        # and had a strictly lower loss at the step where this trial stopped.
        step = r.curve[-1]["step"]
        named = [int(n) for n in r.error.rsplit("trial(s) ", 1)[1].split(", ")]
        for number in named:
            ref = completed[number]
            ref_loss = next(p["val_loss"] for p in ref.curve if p["step"] == step)
            assert ref.n_params <= r.n_params and ref_loss < r.curve[-1]["val_loss"]
        assert len(r.curve) < 4  # it did not train to the end
    states = {t.number: t.state for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    assert all(states[r.number] == TrialState.PRUNED for r in stopped)


@pytest.mark.parametrize("sampler", [{"type": "tpe", "n_startup_trials": 2}, {"type": "nsga2", "population_size": 2},
                                     {"type": "gp", "n_startup_trials": 2}, {"type": "random"},
                                     {"type": "qmc"}])
def test_every_sampler_runs_a_constrained_multi_objective_study(write_study, sqlite_url, sampler):
    path = write_study(n_trials=4, sampler=sampler, objectives=["val_loss", "memory_bytes"],
                       early_stop={"enabled": False})
    summary = run_study(path, sqlite_url)
    rows = _rows(sqlite_url)
    statuses = [r.status for r in rows]
    assert summary.counts == {s: statuses.count(s) for s in set(statuses)} and len(rows) == 4
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    key = "budget:a10g@2Mx16"
    for r in rows:
        trial = trials[r.number]
        assert r.status in ("completed", "infeasible") and trial.state == TrialState.COMPLETE
        # what the sampler proposed is what was built and stored, and Optuna holds the stored objectives
        assert r.params == trial.params and r.objectives == trial.values
        # Optuna's named constraints are ours; the list-style copy (optuna_attrs) adds "0", "1", ...
        assert r.constraints == {k: trial.constraints[k] for k in r.constraints}
        assert (r.constraints[key] > 0) == (r.status == "infeasible") == (r.fits is False)
        loss = r.metrics["val_loss"] if r.status == "completed" else math.log(64)  # untrained: a uniform guess
        assert r.objectives == [pytest.approx(loss), r.budget[key]["total_bytes"]]
        assert 0 < r.objectives[1] and math.isfinite(r.objectives[0])


def test_grid_sampler_walks_the_grid(write_study, sqlite_url):
    space = {"parameters": {"d_model": {"type": "categorical", "choices": [64, 128]},
                            "blocks.M.d_state": {"type": "categorical", "choices": [8, 16]}}}
    path = write_study(n_trials=4, sampler={"type": "grid"}, space=space, constraints={})
    run_study(path, sqlite_url)
    seen = {(r.params["d_model"], r.params["blocks.M.d_state"]) for r in _rows(sqlite_url)}
    assert seen == {(64, 8), (64, 16), (128, 8), (128, 16)}


def test_a_trial_that_trained_all_its_steps_keeps_its_objectives(write_study, sqlite_url):
    # Evaluated only after the last step: the dominance rule would fire there (patience 1), but a finished trial
    # is completed with its objectives, never "stopped" with none.
    path = write_study(n_trials=8, constraints={}, objectives=["val_loss", "n_params"],
                       early_stop={"min_completed": 1, "patience": 1, "margin": 0.0})
    run_study(path, sqlite_url, ToyEvaluator(steps=4, eval_every=4))
    rows = _rows(sqlite_url)
    assert len(rows) == 8
    assert all(r.status == "completed" and r.objectives and len(r.objectives) == 2 for r in rows), \
        [(r.status, r.objectives) for r in rows]


def test_a_resumed_study_draws_new_candidates_instead_of_replaying_its_first_ones(write_study, sqlite_url):
    first = write_study(n_trials=4, constraints={})
    run_study(first, sqlite_url)
    more = write_study(n_trials=8, constraints={})
    run_study(more, sqlite_url)
    rows = sorted(_rows(sqlite_url), key=lambda r: r.number)
    assert len(rows) == 8
    drawn = [repr(sorted(r.params.items())) for r in rows]
    assert drawn[4:] != drawn[:4]  # before, the re-seeded random sampler drew exactly trials 0-3 again
