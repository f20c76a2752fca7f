"""Successive-halving rung rows and fidelity rows on SQLite and PostgreSQL: a rung decision is made once, however
many workers race to make it."""

import threading

from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage import rungs


def _study(db):
    return records.ensure_study(db, name="s", space_hash="h", study_file={"name": "s"},
                                objectives=[{"metric": "val_loss", "direction": "minimize"}],
                                n_trials_target=4, archsearch_version="test")


def test_a_rung_decision_is_made_once_under_racing_workers(storage_url):
    with Database(storage_url) as db:
        study = _study(db)
    outcomes = []

    def decide(decision):
        with Database(storage_url) as db:
            outcomes.append(rungs.decide_rung(db, study_id=study.id, trial_number=3, rung=1, fraction=0.5, step=10,
                                              objectives=[1.0], feasible=True, decision=decision, worker=decision))

    threads = [threading.Thread(target=decide, args=("promoted" if i % 2 else "stopped",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Database(storage_url) as db:
        stored = rungs.rung_results(db, study.id, 1)
        assert len(stored) == 1
        assert outcomes == [stored[0].decision] * 6  # every racer was told the one stored decision
        assert rungs.stored_decision(db, study.id, 3, 1) == stored[0].decision
        assert rungs.stored_decision(db, study.id, 3, 0) is None


def test_rung_results_and_fidelity_rows_read_back(storage_url):
    with Database(storage_url) as db:
        study = _study(db)
        for number, loss in ((2, 3.0), (0, 1.0)):
            rungs.decide_rung(db, study_id=study.id, trial_number=number, rung=0, fraction=0.25, step=5,
                              objectives=[loss], feasible=True, decision="promoted", worker=None)
        assert [(r.trial_number, r.objectives) for r in rungs.rung_results(db, study.id, 0)] == [(0, [1.0]), (2, [3.0])]
        row = records.start_trial(db, study_id=study.id, optuna_trial_id=7, number=0, params={}, retry_of=None,
                                  worker="w")
        rungs.set_trial_rung(db, row, 2)
        assert records.trials_of(db, study.id)[0].rung == 2
        rungs.add_fidelity(db, study.id, factor=4.0, candidates=[{"number": 0}], noise=None,
                           stats={"val_loss": {"tau": 0.5}})
        assert rungs.fidelity_of(db, study.id)[0].stats == {"val_loss": {"tau": 0.5}}
        try:
            rungs.decide_rung(db, study_id=study.id, trial_number=9, rung=0, fraction=0.25, step=5, objectives=[1.0],
                              feasible=True, decision="maybe", worker=None)
        except ValueError as err:
            assert "promoted, stopped, final" in str(err)
        else:
            raise AssertionError("an unknown decision was stored")
