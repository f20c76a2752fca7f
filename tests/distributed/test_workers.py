"""`study run --workers auto`: the GPU assignment as a pure function of the visible devices, the CPU fallback,
and the per-worker CUDA_VISIBLE_DEVICES reaching the worker processes."""

import pytest

from archsearch.errors import UserError
from archsearch.studies.gpus import WorkerPlan, parse_workers, plan_workers, visible_devices


@pytest.mark.parametrize("variable, count, expected", [
    (None, 4, ["0", "1", "2", "3"]),
    ("2,5,7", 8, ["2", "5", "7"]),
    (" 1 , 0 ", 8, ["1", "0"]),
    ("", 8, []),
    ("-1", 8, []),
    ("0,-1,2", 8, ["0"]),  # CUDA stops at the first invalid entry
    ("GPU-aa,GPU-bb", 2, ["GPU-aa", "GPU-bb"]),
    ("0,1,2", 0, []),  # listed but no CUDA here
])
def test_visible_devices(variable, count, expected):
    assert visible_devices(variable, count) == expected


@pytest.mark.parametrize("devices, per_trial, groups, idle", [
    (["0", "1", "2", "3"], 1, [["0"], ["1"], ["2"], ["3"]], False),
    (["4", "5", "6", "7"], 2, [["4", "5"], ["6", "7"]], False),
    (["0", "1", "2", "3", "4"], 2, [["0", "1"], ["2", "3"]], True),
    (list("01234567"), 8, [list("01234567")], False),
])
def test_one_worker_per_group_of_gpus(devices, per_trial, groups, idle):
    plan = plan_workers(devices, per_trial)
    assert plan.groups == groups and plan.workers == len(groups) and not plan.on_cpu
    assert ("idle" in plan.note) == idle
    envs = [plan.env(i, {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}) for i in range(plan.workers)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == [",".join(g) for g in groups]
    assert all(e["PATH"] == "/bin" for e in envs)


def test_no_gpu_means_one_cpu_worker_and_says_so():
    plan = plan_workers([], 2)
    assert plan.on_cpu and plan.workers == 1
    assert "no GPU visible, so one CPU worker" in plan.note and "2 gloo processes" in plan.note
    assert plan.env(0, {"A": "1"}) == {"A": "1"}


def test_too_few_gpus_for_one_trial_is_a_clear_error():
    with pytest.raises(UserError, match=r"gpus_per_trial 4 needs 4 GPUs per trial but 2 visible \(0,1\)"):
        plan_workers(["0", "1"], 4)


@pytest.mark.parametrize("value, expected", [("auto", None), ("AUTO", None), ("3", 3), ("1", 1)])
def test_parse_workers(value, expected):
    assert parse_workers(value) == expected


@pytest.mark.parametrize("value", ["0", "-2", "many", ""])
def test_parse_workers_refuses(value):
    with pytest.raises(UserError, match="expected a number of worker processes >= 1, or auto"):
        parse_workers(value)


def test_auto_starts_one_worker_process_per_gpu_group_with_its_devices(monkeypatch, tmp_path, capsys, study_file):
    """The study launcher with a four-GPU plan: the worker processes it would start get their own devices."""
    import archsearch.studies.gpus as gpus
    import archsearch.studies.launch as launch
    from archsearch.studies.runner import RunSummary

    started = {}

    def fake_workers(file, runner, workers, n_trials, timeout_s, seed_offset, envs):
        started.update(workers=workers, devices=[e.get("CUDA_VISIBLE_DEVICES") for e in envs])
        return RunSummary(runner.study.name, runner.url, {}, [])

    monkeypatch.setattr(gpus, "auto_plan", lambda g: plan_workers(["0", "1", "2", "3"], g))
    monkeypatch.setattr(launch, "_run_workers", fake_workers)
    study = study_file(2)
    notes = []
    outcome = launch.run_study(str(study), storage=f"sqlite:///{tmp_path / 'db.sqlite'}", n_trials=None,
                               timeout_s=None, workers="auto", live=False, note=notes.append)
    assert started == {"workers": 2, "devices": ["0,1", "2,3"]} and outcome.workers == 2
    assert any("worker 1 -> CUDA_VISIBLE_DEVICES=2,3" in n for n in notes)


def test_auto_on_a_cpu_machine_runs_one_worker_whose_trials_use_two_processes(tmp_path, capsys, study_file):
    """Without GPUs: one CPU worker, each trial trained by two gloo processes; storage gets one row per trial,
    with rank 0's result (the reduced tokens/s), never one per rank."""
    import torch

    from archsearch.cli import main
    from archsearch.storage import Database, records

    if torch.cuda.is_available():
        pytest.skip("the CPU fallback needs a machine without GPUs")
    study = study_file(2)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    assert main(["study", "run", str(study), "--storage", url, "--workers", "auto", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "no GPU visible, so one CPU worker; each trial runs 2 gloo processes on CPU" in captured.err
    with Database(url) as db:
        assert records.status_counts(db, records.study_by_name(db, "ddp-study").id) == {"completed": 1}
    assert main(["results", "export", "--storage", url, "--format", "json"]) == 0
    rows = __import__("json").loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["tokens_per_s"] > 0


def test_workers_bad_value_exits_2(capsys, study_file):
    from archsearch.cli import main

    study = study_file(1)
    assert main(["study", "run", str(study), "--workers", "lots"]) == 2
    assert "--workers 'lots': expected a number of worker processes >= 1, or auto" in capsys.readouterr().err


def test_gpus_per_trial_with_one_named_gpu_is_refused_at_the_file(capsys, study_file):
    from archsearch.cli import main

    study = study_file(2, device="cuda:1")
    assert main(["study", "run", str(study)]) == 2
    err = capsys.readouterr().err
    assert "gpus_per_trial 2 runs one process per GPU: device must be cpu, cuda or unset, not 'cuda:1'" in err
