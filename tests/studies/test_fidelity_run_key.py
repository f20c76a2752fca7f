"""A fidelity retraining's stored identity includes the trial's target: analytic objectives judge the target, so
two trials with one proxy and different targets must not share a stored long run."""

from types import SimpleNamespace

from archsearch.studies.fidelity import _Retrainer

from studies_helpers import BASE_SPEC


def test_one_proxy_with_two_targets_gives_two_run_keys():
    retrainer = _Retrainer.__new__(_Retrainer)  # plan() reads only the study file's task and recipe
    retrainer.file = SimpleNamespace(task={"name": "mqar", "options": {"vocab": 16, "n_pairs": 2}},
                                     recipe={"steps": 8, "batch_size": 4, "seq_len": 16})
    spec = {**BASE_SPEC, "name": "proxy"}
    small, large, again = (SimpleNamespace(spec=spec, candidate_key=k, number=n)
                           for k, n in (("target-a", 0), ("target-b", 1), ("target-a", 2)))
    keys = [retrainer.plan(row, 4.0, 0).key for row in (small, large, again)]
    assert keys[0] != keys[1] and keys[0] == keys[2]
    assert retrainer.plan(small, 4.0, 1).key != keys[0]  # the seed is part of it too
