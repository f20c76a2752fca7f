"""bench/bench_study_time.py on the CPU (--smoke): its report, and a run cut short by SIGTERM (a GPU call's time
limit) still reports the trials that finished."""

import importlib.util
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_study_time", ROOT / "bench" / "bench_study_time.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_study_time.py"), "--smoke", "--keep",
                           str(folder), "--json", str(folder / "r.json")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder, json.loads((folder / "r.json").read_text())[0], done.stdout


def test_a_smoke_run_reports_every_trial(smoke_run):
    _, report, stdout = smoke_run
    assert report["trials"] == 3 and not report["partial"]
    assert 0 < report["steps_share"] < 1 and report["wall_s"] > 0
    assert "share of wall time in training steps" in stdout and "cut short" not in stdout


def test_a_run_cut_short_counts_its_wall_time_to_the_last_finished_trial(smoke_run):
    folder, full, _ = smoke_run
    run = {"name": full["study"], "url": f"sqlite:///{folder / 'studies.db'}", "wall_s": None,
           "began_at": 0.0, "partial": True}
    began_at = _last_end(run) - full["wall_s"]  # as if the run had started then
    cut = bench.report({**run, "began_at": began_at}, gpus=1)
    assert cut["partial"] and cut["trials"] == 3
    assert cut["wall_s"] == pytest.approx(full["wall_s"], abs=0.05)  # from began_at to the last trial's end
    assert cut["steps_share"] == pytest.approx(full["steps_share"] * full["wall_s"] / cut["wall_s"], rel=0.02)  # walls rounded to 0.1 s
    assert cut["after_last_trial_s"] == 0.0


def _last_end(run):
    import optuna

    study = optuna.load_study(study_name=run["name"], storage=run["url"])
    return max(t.datetime_complete.timestamp() for t in study.trials)


def test_sigterm_while_the_study_runs_stops_it_as_ctrl_c_and_returns_a_partial_run(tmp_path, monkeypatch, capsys):
    class StudyStillRunning:
        signals, kwargs = [], {}

        def __init__(self, *args, **kwargs):
            StudyStillRunning.kwargs = kwargs

        def wait(self, timeout=None):
            # `timeout` ends the benchmark while the study runs; then sends it again (to the group): ignored
            signal.raise_signal(signal.SIGTERM)
            return 130

        def send_signal(self, sig):
            StudyStillRunning.signals.append(sig)

    monkeypatch.setattr(bench.subprocess, "Popen", StudyStillRunning)
    args = type("Args", (), {"smoke": True, "steps": 3, "trials": 3, "workers": "1", "compile": False,
                             "compile_scope": "layers", "seed": 0})()
    before = signal.getsignal(signal.SIGTERM)
    run = bench.run_study("cut", tmp_path, args, env={})
    assert run["partial"] and StudyStillRunning.signals == [signal.SIGINT]
    assert StudyStillRunning.kwargs["start_new_session"]  # the group's SIGTERM does not kill it before its Ctrl-C
    assert "cut short" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before
