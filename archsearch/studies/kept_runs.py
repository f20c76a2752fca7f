"""Trial run folders kept after a study (study file `keep_checkpoints:`): `none` (the default) trains each trial
without a run folder (under successive halving a trial has one while it runs, to resume between rungs, removed when
it finishes); `all` trains each into `trial-<number>/` of the study's runs folder beside the storage
(archsearch.studies.halving.runs_folder: `x.runs/<study>/` beside `sqlite:///x.db`); `best` does the same and, after
each trial, deletes the folders of finished trials that are not among the study's best (the best trial, or the
Pareto front of several objectives), so the kept checkpoints are always the current best ones.

A run folder is what `archsearch train -o` writes (spec.yaml, model.safetensors, result.json, ...): it resumes,
exports (`archsearch export-hf DIR`) and loads like any other; the trial row's `out_dir` names it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Literal

from ..storage import records
from ..storage.tally import PENDING
from .fronts import best_trials
from .promotion import RETRY_KEY, trial_folder

KeepCheckpoints = Literal["none", "best", "all"]
_FOLDER = re.compile(r"trial-(\d+)")
_EVERY = 1_000_000  # best_trials' limit for "the whole front"


def run_folder(runner, trial) -> dict[str, Any]:
    """`out_dir=` for the evaluator of `trial`, or nothing when the study keeps no checkpoints. A retry trains into
    the folder of the trial it re-runs, from scratch (the attempt it replaces may have stopped anywhere)."""
    if runner.study.file.keep_checkpoints == "none":
        return {}
    attrs = runner.optuna_study._storage.get_trial_system_attrs(trial._trial_id)
    out = trial_folder(runner.url, runner.study.name, attrs.get(RETRY_KEY, trial.number))
    if out.exists():  # an earlier attempt's, or a deleted study's of the same name
        shutil.rmtree(out)
    return {"out_dir": out}


def keep_best(runner) -> list[Path]:
    """With `keep_checkpoints: best`, delete the run folders of finished trials off the best set (their rows' out_dir
    cleared); returns the deleted folders. Folders of running trials (any worker's) are never touched."""
    if runner.study.file.keep_checkpoints != "best":
        return []
    limit = 1 if len(runner.objectives) == 1 else _EVERY  # the best trial, or the whole Pareto front
    best = {b["number"] for b in best_trials(runner.db, runner.record.id, runner.objectives, limit)}
    rows = records.trials_of(runner.db, runner.record.id)

    def origin(row) -> int:
        return row.retry_of if row.retry_of is not None else row.number

    kept = {origin(r) for r in rows if r.number in best or r.status in PENDING}
    root = trial_folder(runner.url, runner.study.name, 0).parent
    removed = []
    for folder in sorted(root.glob("trial-*")) if root.is_dir() else []:
        match = _FOLDER.fullmatch(folder.name)
        if match and int(match.group(1)) not in kept and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    gone = {str(f) for f in removed}
    for row in rows:
        if row.out_dir is not None and row.out_dir in gone:
            records.update_trial(runner.db, row.id, finished=False, out_dir=None)
    return removed
