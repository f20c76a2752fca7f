"""A study under one FLOPs budget: each trial trains the steps its own FLOPs per token buy (real CPU training), and
what it trained is stored with the trial."""

import math

import optuna

from archsearch.spec import parse_spec, training_flops_per_token
from archsearch.storage import Database
from archsearch.storage import records
from archsearch.studies.evaluate import TrainEvaluator, plan_of

from studies_helpers import BASE_SPEC, run_study

TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
SEQ, BATCH = 16, 4


def _per_step(spec) -> float:
    return BATCH * SEQ * training_flops_per_token(spec, SEQ)


def _run_grid(write_study, sqlite_url, recipe, widths):
    space = {"parameters": {"d_model": {"type": "categorical", "choices": widths}}}
    path = write_study(n_trials=len(widths), sampler={"type": "grid"}, space=space, constraints={}, task=TASK,
                       recipe=recipe, objectives=["val_loss", "n_params"], early_stop={"enabled": False})
    evaluator = TrainEvaluator(TASK, recipe, seed=0, device="cpu")
    run_study(path, sqlite_url, evaluator)
    with Database(sqlite_url) as db:
        rows = {r.number: r for r in records.trials_of(db, records.study_by_name(db, "toy").id)}
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    return evaluator, rows, trials


def test_trials_of_different_sizes_get_the_steps_their_flops_buy(write_study, sqlite_url):
    small = parse_spec({**BASE_SPEC, "d_model": 64})
    budget = 12.5 * _per_step(small)  # the small model trains 12 steps; a wider one fewer
    recipe = {"flops": budget, "batch_size": BATCH, "seq_len": SEQ, "eval_every": 0.5, "warmup": 0.2}
    evaluator, rows, trials = _run_grid(write_study, sqlite_url, recipe, [64, 256])
    plan = plan_of(evaluator, small)  # what the runner's early stop works from: equal FLOPs, 12 steps
    assert (plan.final_step, plan.axis, plan.per_step) == (12, "flops", _per_step(small))
    steps = {}
    for number, row in rows.items():
        assert row.status == "completed", (row.status, row.error)
        spec = parse_spec(row.spec)
        per_step = _per_step(spec)
        trained = trials[number].user_attrs["trained"]
        expected = math.floor(budget / per_step)
        assert trained["budget"] == "flops" and trained["requested"] == budget
        assert trained["steps"] == trained["planned_steps"] == expected >= 1
        assert trained["tokens"] == expected * BATCH * SEQ and trained["flops"] == expected * per_step <= budget
        assert row.curve[-1]["step"] == expected and row.curve[-1]["flops"] == trained["flops"]
        steps[spec.d_model] = trained["steps"]
    assert set(steps) == {64, 256}
    assert steps[64] == 12 and steps[256] < steps[64]
    # the curves reach Optuna (and a pruner) keyed by the share of the budget used, so trials meet at equal compute
    keys = {parse_spec(rows[n].spec).d_model: sorted(t.intermediate_values) for n, t in trials.items()}
    assert keys[64] == [500, 1000], keys  # evaluations at steps 6 and 12 of 12
    assert keys[256][-1] == 1000 and set(keys[256]) <= {500, 1000}, keys  # its own steps, the same compute points
    assert all(t.user_attrs["curve_step_unit"] == "permille of the flops budget" for t in trials.values())


def test_a_trial_whose_budget_buys_no_step_fails_with_the_reason_and_the_study_goes_on(write_study, sqlite_url):
    small = parse_spec({**BASE_SPEC, "d_model": 64})
    recipe = {"flops": 1.5 * _per_step(small), "batch_size": BATCH, "seq_len": SEQ}
    _, rows, trials = _run_grid(write_study, sqlite_url, recipe, [64, 1024])
    by_width = {parse_spec(r.spec).d_model: r for r in rows.values()}
    assert by_width[64].status == "completed" and trials[by_width[64].number].user_attrs["trained"]["steps"] == 1
    assert by_width[1024].status == "failed" and "recipe.flops" in by_width[1024].error
    assert "buy no step" in by_width[1024].error
