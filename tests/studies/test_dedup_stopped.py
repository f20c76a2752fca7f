"""Which earlier outcome a repeated candidate reuses: a completed trial's result, or a dominance stop (dominated by
completed trials, which only grow, so the repeat would be stopped again). A successive-halving stop is not reused:
it ranked the trial against the results of its time, and a repeat judged later may be promoted."""

import optuna

from archsearch.storage import Database, records
from archsearch.storage import rungs as rung_rows

from studies_helpers import ResumableToy, ToyEvaluator, run_study

TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
# blocks.L.window changes no model whose pattern has no L layer: each grid point below is drawn twice
TWICE = {"blocks.L.window": {"type": "categorical", "choices": [8, 16]}}


def _rows_and_trials(url):
    with Database(url) as db:
        study = records.study_by_name(db, "toy")
        rows = {r.number: r for r in records.trials_of(db, study.id)}
        rung0 = rung_rows.rung_results(db, study.id, 0)
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=url).trials}
    return rows, trials, rung0


def test_a_repeat_of_a_dominated_candidate_is_a_stopped_duplicate(write_study, sqlite_url):
    # at one width, M-M- has more parameters and (toy loss + 0.01 a layer) a higher loss than M-: dominated
    space = {"pattern": {"choices": ["M-", "M-M-"]}, "parameters": TWICE}
    path = write_study(n_trials=4, sampler={"type": "grid"}, space=space, constraints={}, seed=0,
                       objectives=["val_loss", "n_params"],
                       early_stop={"min_completed": 1, "patience": 1, "margin": 0.0})
    toy = ToyEvaluator(steps=8, eval_every=2)
    run_study(path, sqlite_url, toy)
    rows, trials, _ = _rows_and_trials(sqlite_url)
    repeats = [r for r in rows.values() if r.status == "duplicate"]
    assert toy.calls == 4 - len(repeats)  # a repeat trains nothing
    of_stopped = [r for r in repeats if rows[r.duplicate_of].status == "stopped"]
    assert of_stopped, [(r.number, r.pattern_compact, r.status) for r in rows.values()]  # the case this test is about
    for row in of_stopped:
        original = rows[row.duplicate_of]
        assert original.number < row.number and original.candidate_key == row.candidate_key
        assert trials[row.number].state == optuna.trial.TrialState.PRUNED
        assert f"duplicate of trial {original.number} (stopped)" == row.error
    # the dashboard serves the study with such a row (no objectives, a duplicate of an untrained-to-the-end trial)
    from starlette.testclient import TestClient

    from archsearch.dashboard import create_app

    client = TestClient(create_app(sqlite_url))
    study_id = rows[0].study_id
    assert client.get(f"/study/{study_id}").status_code == 200
    served = client.get(f"/api/study/{study_id}/trials").json()
    assert "duplicate" in str(served)


def test_a_repeat_of_a_candidate_halving_stopped_is_judged_again(write_study, sqlite_url):
    space = {"parameters": {"d_model": {"type": "categorical", "choices": [16, 32, 64]}, **TWICE}}
    halving = {"rungs": [0.5, 1.0], "keep": 0.5, "min_results": 1}
    path = write_study(n_trials=6, sampler={"type": "grid"}, space=space, constraints={}, task=TASK,
                       objectives=["val_loss"], halving=halving, seed=3)
    run_study(path, sqlite_url, ResumableToy(steps=8, eval_every=2))
    rows, trials, rung0 = _rows_and_trials(sqlite_url)
    judged = {r.trial_number for r in rung0}
    retrained = [r for r in rows.values() if r.status != "duplicate" and any(
        o.number < r.number and o.candidate_key == r.candidate_key and o.status == "stopped" for o in rows.values())]
    assert retrained, [(r.number, r.status) for r in rows.values()]  # seed 3's order repeats a stopped candidate
    for row in retrained:
        assert row.number in judged  # trained to its rung and ranked there against the results of its own time
    for row in (r for r in rows.values() if r.status == "duplicate"):
        original = rows[row.duplicate_of]
        assert original.status == "completed"  # only a completed result is reused under halving
        assert trials[row.number].values == trials[original.number].values
