"""The multi-objective dominance rule on hand-made curves."""

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
