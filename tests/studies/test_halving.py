"""Successive halving: the ranking and promotion rule, rung steps, resumption from a rung's checkpoint (equal to
an uninterrupted run), and a real CPU study whose trials stop or continue rung by rung."""

import json
import math

import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.spec import parse_spec
from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage import rungs as rung_rows
from archsearch.studies.halving import HalvingConfig, RungReached, promoted, rank
from archsearch.studies.promotion import trial_folder
from archsearch.training import Recipe, TaskSpec, train

from studies_helpers import BASE_SPEC, run_study

MIN = ["minimize", "minimize"]
TASK = {"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}}


def test_rank_by_fronts_then_crowding_then_feasibility():
    points = [(1, 5), (2, 4), (3, 3), (2, 6), (5, 1), (4, 4)]
    # fronts: {0,1,2,4} then {3,5}; in the first, the extremes 0 and 4 are infinitely crowded (earlier first)
    order = rank(points, MIN)
    assert order[:2] == [0, 4] and set(order[2:4]) == {1, 2} and set(order[4:]) == {3, 5}
    # 1 and 2: crowding of 1 = (3-1)/4 + (5-3)/4 = 1.0, of 2 = (5-2)/4 + (4-1)/4 = 1.5 -> 2 first
    assert order[2:4] == [2, 1]
    # an infeasible point ranks after every feasible one, however good
    assert rank([(0, 0), (9, 9)], MIN, [False, True]) == [1, 0]
    assert rank([(1,), (1,)], ["maximize"]) == [0, 1]  # ties: the earlier first


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6), st.booleans()), min_size=1, max_size=14),
       st.sampled_from(["1/2", "1/3", 0.25]))
def test_rank_is_a_permutation_that_never_puts_a_dominated_result_first(results, keep):
    points = [(a, b) for a, b, _ in results]
    feasible = [ok for _, _, ok in results]
    order = rank(points, MIN, feasible)
    assert sorted(order) == list(range(len(points)))
    position = {index: at for at, index in enumerate(order)}
    for i, p in enumerate(points):
        for j, q in enumerate(points):
            if feasible[i] and not feasible[j]:
                assert position[i] < position[j]
            elif feasible[i] == feasible[j] and p[0] <= q[0] and p[1] <= q[1] and p != q:
                assert position[i] < position[j]  # i dominates j
    config = HalvingConfig(rungs=[0.5, 1.0], keep=keep)
    kept = [i for i in range(len(points)) if promoted(list(zip(points, feasible)), i, MIN, config)]
    expected = len(points) if len(points) < config.threshold else max(1, int(config.keep * len(points) + 1e-9))
    assert len(kept) == expected and set(kept) == set(order[:expected])


def test_promotion_keeps_the_best_share_once_a_rung_has_enough_results():
    config = HalvingConfig(rungs=[0.5, 1.0], keep="1/3")
    assert config.threshold == 3
    lone = [((5.0,), True)]
    assert promoted(lone, 0, ["minimize"], config)  # nothing to judge against yet
    results = [((float(v),), True) for v in (3, 1, 2, 6, 5, 4)]
    kept = [i for i in range(6) if promoted(results, i, ["minimize"], config)]
    assert kept == [1, 2]  # floor(6 / 3) = 2 best
    assert HalvingConfig(rungs=[0.25, 0.5, 1.0]).rung_steps(10) == [3, 5, 10]
    assert HalvingConfig(rungs=[0.1, 0.2, 1.0]).rung_steps(4) == [1, 4]  # rungs that round together merge


def test_a_run_resumed_from_a_rung_checkpoint_equals_an_uninterrupted_one(tmp_path):
    spec = parse_spec({**BASE_SPEC, "name": "resume", "pattern": "M*"})
    task = TaskSpec.model_validate(TASK)
    recipe = Recipe(steps=12, batch_size=4, seq_len=16, eval_every=2, warmup=3, log_every=1)
    whole = train(spec, task, recipe, out_dir=tmp_path / "whole", progress=False, device="cpu")

    def pause(step, metrics):
        if step >= 4:
            raise RungReached(0, step, metrics)

    with pytest.raises(RungReached) as stopped:
        train(spec, task, recipe, out_dir=tmp_path / "rung", callback=pause, progress=False, device="cpu")
    assert stopped.value.result.steps == 4
    seen = []
    resumed = train(spec, task, recipe, out_dir=tmp_path / "rung", progress=False, device="cpu", resume=True,
                    callback=lambda step, metrics: seen.append(step))
    assert seen == [6, 8, 10, 12]  # continued from step 4: nothing trained twice
    assert resumed.steps == whole.steps == 12
    assert resumed.metrics["val_loss"] == pytest.approx(whole.metrics["val_loss"], rel=1e-5)
    assert [p["lr"] for p in resumed.curve if "lr" in p] == pytest.approx([p["lr"] for p in whole.curve if "lr" in p])
    from safetensors.torch import load_file

    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(tmp_path / "rung" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("keep", ["all", "none"])
def test_a_study_in_rungs_promotes_the_best_share_and_stops_the_rest(write_study, sqlite_url, keep):
    space = {"parameters": {"d_model": {"type": "categorical", "choices": [64, 128]},
                            "blocks.M.d_state": {"type": "categorical", "choices": [8, 16, 32]}}}
    recipe = {"steps": 8, "batch_size": 4, "seq_len": 16, "eval_every": 2, "warmup": 2}
    halving = {"rungs": [0.25, 0.5, 1.0], "keep": 0.5, "min_results": 2}
    path = write_study(n_trials=6, sampler={"type": "grid"}, space=space, constraints={}, task=TASK, recipe=recipe,
                       objectives=["val_loss", "n_params"], halving=halving, keep_checkpoints=keep)
    from archsearch.studies.evaluate import TrainEvaluator

    run_study(path, sqlite_url, TrainEvaluator(TASK, recipe, seed=0, device="cpu"))
    with Database(sqlite_url) as db:
        study = records.study_by_name(db, "toy")
        rows = {r.number: r for r in records.trials_of(db, study.id)}
        by_rung = {k: rung_rows.rung_results(db, study.id, k) for k in range(3)}
    trials = {t.number: t for t in optuna.load_study(study_name="toy", storage=sqlite_url).trials}
    config = HalvingConfig(**halving)
    statuses = sorted(r.status for r in rows.values())
    assert set(statuses) == {"completed", "stopped"}, [(r.status, r.error) for r in rows.values()]
    for number, row in rows.items():
        attr = trials[number].user_attrs["rung"]
        assert row.rung == attr["rung"]
        if row.status == "stopped":
            assert row.rung < 2 and attr["decision"] == "stopped" and f"rung {row.rung + 1} of 3" in row.error
            assert trials[number].state == optuna.trial.TrialState.PRUNED
        else:
            assert row.rung == 2 and attr["decision"] == "final"
            steps = [p["step"] for p in row.curve if "val_loss" in p]
            assert steps == [2, 4, 6, 8]  # trained on through every rung, never restarted
            assert trials[number].user_attrs["trained"]["steps"] == 8
        folder = trial_folder(sqlite_url, "toy", number)
        if keep == "none":  # the folder served only to resume between rungs: a finished trial's goes
            assert not folder.exists() and row.out_dir is None
            continue
        # a kept folder holds the run as its record says it ended: a stopped trial's weights at its stop
        state = json.loads((folder / "state.json").read_text())
        result = json.loads((folder / "result.json").read_text())
        assert state["step"] == result["steps"] == {"completed": 8, "stopped": [2, 4][min(row.rung, 1)]}[row.status]
        assert (folder / "model.safetensors").is_file() and row.out_dir == str(folder)
    # every rung's decisions follow the rule on the results recorded before each (in trial order: one worker)
    for k in (0, 1):
        results = by_rung[k]
        assert [r.trial_number for r in results] == sorted(r.trial_number for r in results)
        for i, r in enumerate(results):
            earlier = [(x.objectives, x.feasible) for x in results[:i + 1]]
            expected = "promoted" if promoted(earlier, i, MIN, config) else "stopped"
            assert r.decision == expected, (k, i)
    # the funnel narrows: fewer reach each next rung, and the last rung's rows are the completed trials
    assert len(by_rung[0]) == 6 and len(by_rung[1]) < 6 and len(by_rung[2]) <= len(by_rung[1])
    assert {r.trial_number for r in by_rung[2]} == {n for n, r in rows.items() if r.status == "completed"}
    assert all(r.decision == "final" for r in by_rung[2])
    assert math.isfinite(sum(r.objectives[0] for r in by_rung[0]))


class _CutAfterRung:
    """TrainEvaluator that is Ctrl-C'd once, mid-way between rung 0 and rung 1 of its first promoted segment."""

    def __init__(self, inner, at_step):
        self.inner, self.at_step, self.cut, self.calls = inner, at_step, False, []

    def plan(self, spec):
        return self.inner.plan(spec)

    @property
    def final_step(self):
        return self.inner.final_step

    def __call__(self, spec, callback, *, out_dir=None, resume=False):
        self.calls.append(resume)

        def maybe_cut(step, metrics):
            callback(step, metrics)
            if resume and not self.cut and step >= self.at_step:
                self.cut = True
                raise KeyboardInterrupt

        return self.inner(spec, maybe_cut, out_dir=out_dir, resume=resume)


def test_a_retried_trial_resumes_from_its_rung_checkpoint_and_ends_as_an_uninterrupted_one(write_study, tmp_path):
    from archsearch.studies.evaluate import TrainEvaluator

    recipe = {"steps": 8, "batch_size": 4, "seq_len": 16, "eval_every": 2, "warmup": 2}
    doc = dict(n_trials=1, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=recipe,
               space={"parameters": {"d_model": {"type": "categorical", "choices": [64]}}},
               objectives=["val_loss", "n_params"], halving={"rungs": [0.25, 0.5, 1.0], "keep": 0.5})
    path = write_study(**doc)
    whole_url, cut_url = f"sqlite:///{tmp_path / 'whole.db'}", f"sqlite:///{tmp_path / 'cut.db'}"
    run_study(path, whole_url, TrainEvaluator(TASK, recipe, seed=0, device="cpu"))
    cut = _CutAfterRung(TrainEvaluator(TASK, recipe, seed=0, device="cpu"), at_step=6)
    first = run_study(path, cut_url, cut)
    # rungs at steps 2, 4, 8: steps 1-2, then 3-4 (resumed), then cut at step 6 (resumed)
    assert first.interrupted and cut.calls == [False, True, True]
    run_study(path, cut_url, cut)
    assert cut.calls == [False, True, True, True]  # the retry resumed from rung 1's checkpoint (step 4)
    rows = {}
    for url in (whole_url, cut_url):
        with Database(url) as db:
            study = records.study_by_name(db, "toy")
            rows[url] = [r for r in records.trials_of(db, study.id) if r.status == "completed"]
            decided = [(r.trial_number, r.rung) for k in range(3) for r in rung_rows.rung_results(db, study.id, k)]
            assert decided == [(0, 0), (0, 1), (0, 2)]  # keyed by the trial the retry re-runs: decided once each
    (whole,), (retried,) = rows[whole_url], rows[cut_url]
    assert retried.retry_of == 0 and retried.rung == 2
    assert [p["step"] for p in retried.curve if "val_loss" in p] == [2, 4, 6, 8]
    assert retried.metrics["val_loss"] == pytest.approx(whole.metrics["val_loss"], rel=1e-5)


def test_recall_is_scored_at_every_rung_and_at_the_end(write_study, sqlite_url):
    from archsearch.studies.evaluate import TrainEvaluator
    from archsearch.studies.launch import _evaluator

    recipe = {"steps": 4, "batch_size": 4, "seq_len": 16, "eval_every": 2, "warmup": 1}
    path = write_study(n_trials=2, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=recipe,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [32, 64]}}},
                       objectives=["val_loss", "recall"], halving={"rungs": [0.5, 1.0], "keep": 0.5, "min_results": 3})
    from archsearch.studies import load_study

    assert _evaluator(load_study(path)).recall  # a study listing recall scores it
    run_study(path, sqlite_url, TrainEvaluator(TASK, recipe, seed=0, device="cpu", recall=True))
    with Database(sqlite_url) as db:
        study_id = records.study_by_name(db, "toy").id
        rows = records.trials_of(db, study_id)
        scored = rung_rows.rung_results(db, study_id, 0) + rung_rows.rung_results(db, study_id, 1)
    assert len(scored) == 4 and all(0.0 <= r.objectives[1] <= 1.0 for r in scored)  # both promoted (min_results 3)
    assert all(r.status == "completed" and r.metrics["recall"] == r.objectives[1] for r in rows)


def test_under_a_flops_budget_each_trial_meets_its_rungs_at_the_same_share_of_compute(write_study, sqlite_url):
    from archsearch.spec import training_flops_per_token
    from archsearch.studies.evaluate import TrainEvaluator

    small = parse_spec({**BASE_SPEC, "d_model": 64})
    budget = 12.5 * 4 * 16 * training_flops_per_token(small, 16)  # 12 steps of the small model, fewer of a wide one
    recipe = {"flops": budget, "batch_size": 4, "seq_len": 16, "eval_every": 0.25, "warmup": 0.2}
    halving = {"rungs": [0.25, 0.5, 1.0], "keep": 0.5, "min_results": 10}  # everyone promoted: rungs only
    path = write_study(n_trials=2, sampler={"type": "grid"}, constraints={}, task=TASK, recipe=recipe,
                       space={"parameters": {"d_model": {"type": "categorical", "choices": [64, 192]}}},
                       objectives=["val_loss", "n_params"], halving=halving)
    run_study(path, sqlite_url, TrainEvaluator(TASK, recipe, seed=0, device="cpu"))
    with Database(sqlite_url) as db:
        study_id = records.study_by_name(db, "toy").id
        rows = {r.number: r for r in records.trials_of(db, study_id)}
        steps = {}
        for k in range(3):
            for r in rung_rows.rung_results(db, study_id, k):
                steps.setdefault(r.trial_number, []).append(r.step)
    config = HalvingConfig(**halving)
    finals = set()
    for number, row in rows.items():
        assert row.status == "completed", row.error
        final = row.curve[-1]["step"]
        finals.add(final)
        assert steps[number] == config.rung_steps(final)  # each at 1/4, 1/2 and all of its own budget
        flops = {p["step"]: p["flops"] for p in row.curve if "val_loss" in p}
        for fraction, step in zip(config.rungs, steps[number]):
            per_step = flops[step] / step
            assert abs(flops[step] - fraction * budget) <= per_step  # within one step of the same compute share
    assert len(finals) == 2  # the two widths trained different step counts: equal compute, not equal steps


def test_rungs_may_be_written_as_fractions_like_keep():
    config = HalvingConfig(rungs=["1/9", "1/3", 1], keep="1/3")
    assert config.rungs == pytest.approx([1 / 9, 1 / 3, 1.0]) and config.keep == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"rungs\[0\] '1/0' divides by zero"):
        HalvingConfig(rungs=["1/0", 1])
    with pytest.raises(ValueError, match=r"rungs\[1\] 'half' is not a number; allowed: a fraction in \(0, 1\]"):
        HalvingConfig(rungs=[0.25, "half", 1])
