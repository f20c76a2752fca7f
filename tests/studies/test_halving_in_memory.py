"""Successive halving decided inside the run (training.Pauses): one training call per trial, the same decisions
and values as stopping, saving and resuming at every rung, no checkpoint for a final stop, and a crash after a
promotion resumes from that rung's checkpoint."""

import json

import pytest

from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage import rungs as rung_rows
from archsearch.studies.evaluate import TrainEvaluator
from archsearch.studies.promotion import trial_folder

from studies_helpers import run_study

TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}
RECIPE = {"steps": 8, "batch_size": 4, "seq_len": 16, "eval_every": 2, "warmup": 2}
SPACE = {"parameters": {"d_model": {"type": "categorical", "choices": [32, 64]},
                        "blocks.M.d_state": {"type": "categorical", "choices": [8, 16, 32]}}}
HALVING = {"rungs": [0.25, 0.5, 1.0], "keep": 0.5, "min_results": 2, "checkpoint_min_s": 0}


class Counting:
    """A TrainEvaluator that counts its calls (each a training run: a build, and a load when resuming); with
    `in_memory=False` it hides its pauses, so the study stops, saves and resumes at every rung instead."""

    def __init__(self, in_memory: bool, recall: bool = False, cut_at: int | None = None,
                 cut_with: type[BaseException] = KeyboardInterrupt):
        self.inner = TrainEvaluator(TASK, RECIPE, seed=0, device="cpu", recall=recall)
        self.pauses_in_memory = in_memory
        self.calls: list[bool] = []  # resume flag of each call
        self.cut_at, self.cut, self.cut_with = cut_at, False, cut_with
        self.saved_step: dict[int, int | None] = {}  # at each evaluation: the step of the checkpoint on disk

    def plan(self, spec):
        return self.inner.plan(spec)

    @property
    def final_step(self):
        return self.inner.final_step

    def __call__(self, spec, callback, *, out_dir=None, resume=False, **pauses):
        self.calls.append(resume)

        def maybe_cut(step, metrics):  # Ctrl-C once, past the cut step
            state = out_dir / "state.json" if out_dir is not None else None
            self.saved_step[step] = json.loads(state.read_text())["step"] if state and state.is_file() else None
            callback(step, metrics)
            if self.cut_at is not None and not self.cut and step >= self.cut_at:
                self.cut = True
                raise self.cut_with("CUDA out of memory. Tried to allocate 2.00 GiB")

        return self.inner(spec, maybe_cut, out_dir=out_dir, resume=resume, **pauses)


def _stored(url):
    with Database(url) as db:
        study_id = records.study_by_name(db, "toy").id
        rows = sorted(records.trials_of(db, study_id), key=lambda r: r.number)
        rungs = [(r.trial_number, r.rung, r.decision, r.step, r.objectives)
                 for k in range(3) for r in rung_rows.rung_results(db, study_id, k)]
    return rows, rungs


@pytest.mark.parametrize("recall", [False, True])
def test_deciding_in_memory_gives_the_decisions_and_values_of_stop_save_resume(write_study, tmp_path, recall):
    objectives = ["val_loss", "recall"] if recall else ["val_loss", "n_params"]
    path = write_study(n_trials=6, sampler={"type": "grid"}, space=SPACE, constraints={}, task=TASK, recipe=RECIPE,
                       objectives=objectives, halving=HALVING)
    urls = {mode: f"sqlite:///{tmp_path / (mode + '.db')}" for mode in ("resume", "memory")}
    evaluators = {"resume": Counting(False, recall), "memory": Counting(True, recall)}
    for mode in urls:
        run_study(path, urls[mode], evaluators[mode])
    (rows_a, rungs_a), (rows_b, rungs_b) = _stored(urls["resume"]), _stored(urls["memory"])
    assert [(t, k, d, s) for t, k, d, s, _ in rungs_a] == [(t, k, d, s) for t, k, d, s, _ in rungs_b]
    for (*_, values_a), (*_, values_b) in zip(rungs_a, rungs_b):
        assert values_b == pytest.approx(values_a, rel=1e-5)
    assert {r.status for r in rows_b} == {"completed", "stopped"}
    for a, b in zip(rows_a, rows_b):
        assert (a.status, a.rung) == (b.status, b.rung)
        assert b.metrics["val_loss"] == pytest.approx(a.metrics["val_loss"], rel=1e-5)
        if recall:
            assert b.metrics["recall"] == pytest.approx(a.metrics["recall"], abs=1e-6)
    # stop-save-resume trains a promoted trial once per rung it reaches; in memory every trial is one call
    assert len(evaluators["memory"].calls) == 6 and not any(evaluators["memory"].calls)
    assert len(evaluators["resume"].calls) == 6 + sum(r.rung for r in rows_a)


def test_a_crash_after_a_promotion_resumes_from_that_rungs_checkpoint(write_study, tmp_path):
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=RECIPE,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=HALVING)
    whole_url, cut_url = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'cut.db'}"
    run_study(path, whole_url, Counting(True))
    cut = Counting(True, cut_at=6)  # rungs at steps 2 and 4 pass (promoted: min_results 2), then Ctrl-C at 6
    assert run_study(path, cut_url, cut).interrupted and cut.calls == [False]
    # each promotion saved its checkpoint before training on: a crash (no chance to save) loses at most a rung
    assert cut.saved_step == {2: None, 4: 2, 6: 4}
    folder = trial_folder(cut_url, "toy", 0)
    assert json.loads((folder / "state.json").read_text())["step"] == 4  # Ctrl-C mid-segment, like a crash
    run_study(path, cut_url, cut)
    assert cut.calls == [False, True]  # the retry resumed in one call from rung 2's checkpoint (step 4)
    (whole, *_), _ = _stored(whole_url)
    rows, rungs = _stored(cut_url)
    retried = next(r for r in rows if r.status == "completed")
    assert retried.retry_of == 0 and [p["step"] for p in retried.curve if "val_loss" in p] == [2, 4, 6, 8]
    assert retried.metrics["val_loss"] == pytest.approx(whole.metrics["val_loss"], rel=1e-5)
    assert [(t, k, d) for t, k, d, *_ in rungs] == [(0, 0, "promoted"), (0, 1, "promoted"), (0, 2, "final")]


def test_a_rung_is_scored_at_its_own_step_whatever_eval_every(write_study, sqlite_url):
    """eval_every 8 of 8 steps evaluates only at the end; the rungs at steps 2 and 4 are still judged there, not at
    the next evaluation (the end, where every rung would have been passed at once)."""
    path = write_study(n_trials=4, sampler={"type": "grid"}, space={"parameters": {"d_model": {
        "type": "categorical", "choices": [32, 48, 64, 80]}}}, constraints={}, task=TASK,
        recipe={**RECIPE, "eval_every": 8}, objectives=["val_loss", "n_params"], halving=HALVING)
    evaluator = Counting(True)
    evaluator.inner = TrainEvaluator(TASK, {**RECIPE, "eval_every": 8}, seed=0, device="cpu")
    run_study(path, sqlite_url, evaluator)
    rows, rungs = _stored(sqlite_url)
    assert {(k, s) for _, k, _, s, _ in rungs} <= {(0, 2), (1, 4), (2, 8)}
    assert {k for _, k, _, _, _ in rungs} == {0, 1, 2}
    for row in rows:
        evaluated = [p["step"] for p in row.curve if "val_loss" in p]
        assert evaluated == {"completed": [2, 4, 8], "stopped": [2, 4][:row.rung + 1]}[row.status]


def test_a_resumed_run_still_pauses_at_the_rungs_ahead_of_it(write_study, tmp_path):
    """Ctrl-C at rung 2's evaluation, before its decision: the retry resumes from rung 1's checkpoint (step 2) and
    still pauses at rung 2 (step 4), deciding it once."""
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=RECIPE,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=HALVING)
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    cut = Counting(True, cut_at=4)
    assert run_study(path, url, cut).interrupted
    assert cut.saved_step == {2: None, 4: 2}
    run_study(path, url, cut)
    assert cut.calls == [False, True] and cut.saved_step[6] == 4  # rung 2 decided, saved, trained on
    rows, rungs = _stored(url)
    assert [(t, k, d, s) for t, k, d, s, _ in rungs] == [(0, 0, "promoted", 2), (0, 1, "promoted", 4),
                                                          (0, 2, "final", 8)]
    assert [r.status for r in rows if r.status != "interrupted"] == ["completed"]


def test_a_trial_failing_after_a_promotion_leaves_no_checkpoint_behind(write_study, sqlite_url):
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=RECIPE,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=HALVING)
    failing = Counting(True, cut_at=6, cut_with=RuntimeError)
    run_study(path, sqlite_url, failing)
    assert failing.saved_step[6] == 4  # rung 2's checkpoint was there when it failed
    rows, _ = _stored(sqlite_url)
    assert [(r.status, r.error) for r in rows] == [("failed", "out of memory")]
    assert not trial_folder(sqlite_url, "toy", 0).exists()  # keep_checkpoints: none, and a failure is not retried


@pytest.mark.parametrize("every", [None, 4])
@pytest.mark.parametrize("keep", ["none", "all"])
def test_a_completed_trial_writes_its_final_checkpoint_only_where_its_folder_is_kept(write_study, tmp_path,
                                                                                     monkeypatch, keep, every):
    """Under keep_checkpoints none the folder goes once the trial ends: the promotions' checkpoints (a crash resumes
    from them) are written, the final one, which would be deleted at once, is not (nor by a `checkpoint_every`
    that falls on the last step)."""
    from archsearch.training import checkpoint

    saved: list[int] = []
    real_save = checkpoint.save_checkpoint
    monkeypatch.setattr(checkpoint, "save_checkpoint",
                        lambda out, model, opt, state: (saved.append(state["step"]), real_save(out, model, opt, state)))
    recipe = {**RECIPE, "checkpoint_every": every} if every else RECIPE
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=recipe,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=HALVING, keep_checkpoints=keep)
    url = f"sqlite:///{tmp_path / 'keep.db'}"
    evaluator = Counting(True)
    evaluator.inner = TrainEvaluator(TASK, recipe, seed=0, device="cpu")
    run_study(path, url, evaluator)
    rows, _ = _stored(url)
    assert [r.status for r in rows] == ["completed"]
    folder = trial_folder(url, "toy", 0)
    if keep == "none":
        assert saved == [2, 4] and not folder.exists()
    else:
        assert saved == [2, 4, 8] and json.loads((folder / "state.json").read_text())["step"] == 8


def test_a_promotion_skips_its_checkpoint_when_the_rest_of_the_run_is_shorter_than_checkpoint_min_s(
        write_study, tmp_path):
    """With `checkpoint_min_s` above what the run has left, a promoted trial trains on without saving; a crash then
    restarts it from the start (nothing to resume), the stored rung decisions stand and the result is the
    uninterrupted run's."""
    halving = {**HALVING, "checkpoint_min_s": 3600}
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=RECIPE,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=halving)
    whole_url, cut_url = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'cut.db'}"
    run_study(path, whole_url, Counting(True))
    cut = Counting(True, cut_at=6)  # promoted at steps 2 and 4, then Ctrl-C at 6
    assert run_study(path, cut_url, cut).interrupted
    assert cut.saved_step == {2: None, 4: None, 6: None}  # no checkpoint at either promotion
    run_study(path, cut_url, cut)
    assert cut.calls == [False, False]  # the retry started again: there was nothing to resume
    (whole, *_), _ = _stored(whole_url)
    rows, rungs = _stored(cut_url)
    retried = next(r for r in rows if r.status == "completed")
    assert retried.metrics["val_loss"] == pytest.approx(whole.metrics["val_loss"], rel=1e-5)
    assert [(t, k, d) for t, k, d, *_ in rungs] == [(0, 0, "promoted"), (0, 1, "promoted"), (0, 2, "final")]


def test_checkpoint_min_s_is_checked():
    from archsearch.studies.halving import HalvingConfig

    assert HalvingConfig(rungs=[0.5, 1]).checkpoint_min_s == 30
    with pytest.raises(ValueError, match="checkpoint_min_s"):
        HalvingConfig(rungs=[0.5, 1], checkpoint_min_s=-1)


class _Clock:
    """loop.py's `time` with a clock that moves 1 s at each reading: every timed step takes exactly 1 s."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        self.now += 1.0
        return self.now


def test_a_promotion_saves_when_what_a_crash_would_lose_exceeds_checkpoint_min_s(write_study, tmp_path,
                                                                                monkeypatch):
    """Pauses at steps 3 and 4, each timed step 1 s (the first step is not timed): at step 3 two seconds of
    training are at risk (> 1.5: saved), at step 4 one second since that save (not saved). A crash at step 6 resumes
    from step 3; rung 2's stored decision stands and the result is the uninterrupted run's."""
    from archsearch.training import loop

    monkeypatch.setattr(loop, "time", _Clock())
    halving = {**HALVING, "rungs": ["3/8", 0.5, 1.0], "checkpoint_min_s": 1.5}
    path = write_study(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=RECIPE,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
                       objectives=["val_loss", "n_params"], halving=halving)
    whole_url, cut_url = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'cut.db'}"
    run_study(path, whole_url, Counting(True))
    cut = Counting(True, cut_at=6)
    assert run_study(path, cut_url, cut).interrupted
    assert cut.saved_step == {2: None, 3: None, 4: 3, 6: 3}  # saved after rung 1 (step 3), not after rung 2
    run_study(path, cut_url, cut)
    assert cut.calls == [False, True]  # resumed from step 3
    (whole, *_), _ = _stored(whole_url)
    rows, rungs = _stored(cut_url)
    retried = next(r for r in rows if r.status == "completed")
    assert retried.metrics["val_loss"] == pytest.approx(whole.metrics["val_loss"], rel=1e-5)
    assert [(t, k, d, s) for t, k, d, s, _ in rungs] == [(0, 0, "promoted", 3), (0, 1, "promoted", 4),
                                                          (0, 2, "final", 8)]
