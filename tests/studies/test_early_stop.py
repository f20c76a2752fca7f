"""The multi-objective dominance rule on hand-made curves."""

import pytest

from archsearch.studies import DominanceStop, Reference

DIRS = {"val_loss": "minimize", "n_params": "minimize"}


def _ref(number, losses, n_params):
    return Reference(number, {step: {"val_loss": v} for step, v in losses.items()}, {"n_params": n_params})


def _stopper(refs, n_params, **kw):
    kw = {"min_completed": 2, "patience": 2, "margin": 0.0, **kw}
    return DominanceStop(DIRS, refs, {"n_params": n_params}, **kw)


def test_stops_after_patience_when_dominated():
    refs = [_ref(0, {10: 1.0, 20: 0.8}, 100), _ref(1, {10: 2.0, 20: 1.9}, 500)]
    stop = _stopper(refs, n_params=200)
    assert stop.update(10, {"val_loss": 1.5}) is None  # dominated once: patience 2
    assert stop.update(20, {"val_loss": 1.2}) == [0]


def test_a_bigger_reference_does_not_dominate_a_smaller_trial():
    refs = [_ref(0, {10: 0.1}, 1000), _ref(1, {10: 0.1}, 1000)]
    stop = _stopper(refs, n_params=200, patience=1)
    assert stop.update(10, {"val_loss": 5.0}) is None


def test_streak_resets_and_margin_protects_against_noise():
    refs = [_ref(0, {10: 1.0, 20: 1.0, 30: 1.0}, 100), _ref(1, {10: 9.0}, 100)]
    stop = _stopper(refs, n_params=100, margin=0.05)
    assert stop.update(10, {"val_loss": 1.2}) is None
    assert stop.update(20, {"val_loss": 1.02}) is None  # within 5%: not dominated, the streak resets
    assert stop.update(30, {"val_loss": 1.2}) is None
    assert stop.update(30, {"val_loss": 1.3}) == [0]


def test_inactive_without_enough_references_or_a_trained_objective():
    assert not _stopper([_ref(0, {10: 0.1}, 1)], n_params=5).active
    only_known = DominanceStop({"n_params": "minimize"}, [_ref(0, {}, 1)] * 3, {"n_params": 5}, min_completed=1)
    assert not only_known.active


def test_missing_step_or_metric_never_dominates():
    refs = [_ref(0, {10: 0.1}, 1), _ref(1, {10: 0.1}, 1)]
    stop = _stopper(refs, n_params=5, patience=1)
    assert stop.update(15, {"val_loss": 9.0}) is None  # no reference evaluated at step 15
    three = DominanceStop({**DIRS, "tokens_per_s": "maximize"}, refs, {"n_params": 5}, min_completed=1, patience=1)
    assert three.update(10, {"val_loss": 9.0}) is None  # throughput unknown at step 10: no claim


# ------------------------------------------------------------------ equal compute (a FLOPs budget)
SMALL_FLOPS, LARGE_FLOPS = 1.0e9, 4.0e9  # per step: the large model costs 4x per step


def _flops_ref(number, per_step, losses):
    """A completed trial whose curve points carry the FLOPs seen, as train() records them."""
    return Reference(number, {s: {"val_loss": v, "flops": s * per_step} for s, v in losses.items()}, {})


def _flops_stopper(refs, per_step, axis="flops"):
    return DominanceStop({"val_loss": "minimize"}, refs, {}, min_completed=1, patience=1, margin=0.0,
                         axis=axis, per_step=per_step)


def test_a_large_trial_is_compared_with_a_small_one_at_equal_flops_not_equal_step():
    # The small model trained 4x the steps under the same budget; at the large trial's step 10 (4e10 FLOPs) the
    # small one's loss at step 40 (the same 4e10 FLOPs) is the one that counts.
    small = _flops_ref(0, SMALL_FLOPS, {10: 3.0, 20: 2.0, 40: 1.0, 80: 0.5})
    assert _flops_stopper([small], LARGE_FLOPS, axis="step").update(10, {"val_loss": 2.0}) is None  # step 10: 3.0
    assert _flops_stopper([small], LARGE_FLOPS).update(10, {"val_loss": 2.0}) == [0]  # 4e10 FLOPs: 1.0


def test_a_small_trial_is_not_judged_by_a_large_ones_later_compute():
    # At the small trial's step 40 (4e10 FLOPs) the large one had reached step 10 (loss 2.5), not step 40 (1.0):
    # at equal compute the small trial is ahead and keeps training, though at equal step it looks dominated.
    large = _flops_ref(0, LARGE_FLOPS, {10: 2.5, 20: 1.5, 40: 1.0})
    assert _flops_stopper([large], SMALL_FLOPS, axis="step").update(40, {"val_loss": 2.0}) == [0]
    assert _flops_stopper([large], SMALL_FLOPS).update(40, {"val_loss": 2.0}) is None


def test_equal_compute_uses_the_latest_evaluation_at_or_below_it_never_a_later_one():
    ref = _flops_ref(0, SMALL_FLOPS, {10: 3.0, 20: 1.0})
    stop = _flops_stopper([ref], SMALL_FLOPS * 1.9)  # step 10 here = 1.9e10 FLOPs: the ref's step 10 (3.0) counts
    assert stop.update(10, {"val_loss": 2.9}) is None
    assert _flops_stopper([ref], SMALL_FLOPS * 2.0).update(10, {"val_loss": 2.9}) == [0]  # exactly 2e10: step 20
    early = _flops_stopper([ref], SMALL_FLOPS * 0.5)  # 5e9 FLOPs: the ref had not evaluated yet
    assert early.update(10, {"val_loss": 99.0}) is None
    no_axis = Reference(1, {10: {"val_loss": 0.1}}, {})  # a curve stored without FLOPs: no claim
    assert _flops_stopper([no_axis], SMALL_FLOPS).update(40, {"val_loss": 99.0}) is None


def test_an_unknown_axis_is_refused():
    with pytest.raises(ValueError, match="axis 'time'"):
        _flops_stopper([], 1.0, axis="time")
