"""keep_checkpoints: a study's trials keep their run folders beside the storage (all), only the best ones (best), or
none (the default); real CPU trainings, so a kept folder is a run folder like `train -o` writes."""

import json

import pytest

from archsearch.storage import Database
from archsearch.storage import records
from archsearch.studies.evaluate import TrainEvaluator
from archsearch.studies.halving import runs_folder

from studies_helpers import run_study

TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
RECIPE = {"steps": 3, "batch_size": 4, "seq_len": 16, "eval_every": 3}


def _run(write_study, sqlite_url, keep):
    extra = {} if keep is None else {"keep_checkpoints": keep}
    space = {"parameters": {"d_model": {"type": "categorical", "choices": [32, 64, 96]}}}
    path = write_study(n_trials=3, sampler={"type": "grid"}, space=space, constraints={}, task=TASK, recipe=RECIPE,
                       objectives=["val_loss"], early_stop={"enabled": False}, **extra)
    run_study(path, sqlite_url, TrainEvaluator(TASK, RECIPE, seed=0, device="cpu"))
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    assert [r.status for r in rows] == ["completed"] * 3
    root = runs_folder(sqlite_url, "toy")
    return rows, sorted(p.name for p in root.glob("trial-*")) if root.is_dir() else []


def test_no_checkpoints_by_default(write_study, sqlite_url):
    rows, folders = _run(write_study, sqlite_url, None)
    assert folders == [] and all(r.out_dir is None for r in rows)


def test_all_keeps_every_trial_run_folder(write_study, sqlite_url):
    rows, folders = _run(write_study, sqlite_url, "all")
    assert folders == [f"trial-{r.number}" for r in rows]
    for row in rows:
        out = runs_folder(sqlite_url, "toy") / f"trial-{row.number}"
        assert row.out_dir == str(out) and (out / "model.safetensors").is_file()
        assert json.loads((out / "result.json").read_text())["metrics"]["val_loss"] == pytest.approx(row.objectives[0])


def test_best_keeps_only_the_best_trial_folder(write_study, sqlite_url):
    rows, folders = _run(write_study, sqlite_url, "best")
    best = min(rows, key=lambda r: r.objectives[0])
    assert folders == [f"trial-{best.number}"]
    assert best.out_dir is not None and (runs_folder(sqlite_url, "toy") / folders[0] / "spec.yaml").is_file()
    assert [r.out_dir for r in rows if r is not best] == [None, None]  # their folders are gone, and so is the path


def test_an_unknown_keep_value_lists_the_allowed_ones(write_study):
    from archsearch.studies import load_study
    from archsearch.studies.documents import FileError

    with pytest.raises(FileError, match="keep_checkpoints.*'none', 'best' or 'all'"):
        load_study(write_study(keep_checkpoints="some"))


def test_best_of_several_objectives_keeps_the_pareto_front(write_study, sqlite_url):
    from archsearch.storage.pareto import pareto_front

    space = {"parameters": {"d_model": {"type": "categorical", "choices": [32, 64, 96]}}}
    path = write_study(n_trials=3, sampler={"type": "grid"}, space=space, constraints={}, task=TASK, recipe=RECIPE,
                       objectives=["val_loss", "n_params"], early_stop={"enabled": False}, keep_checkpoints="best")
    run_study(path, sqlite_url, TrainEvaluator(TASK, RECIPE, seed=0, device="cpu"))
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    front = {rows[i].number for i in pareto_front([r.objectives for r in rows], ["minimize", "minimize"])}
    kept = sorted(p.name for p in runs_folder(sqlite_url, "toy").glob("trial-*"))
    assert kept == [f"trial-{n}" for n in sorted(front)] and front
    assert {r.number for r in rows if r.out_dir is not None} == front
