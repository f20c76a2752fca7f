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
stack_samples = sys.modules["stack_samples"]  # bench_study_time imports it from bench/


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_study_time.py"), "--smoke", "--keep",
                           str(folder), "--json", str(folder / "r.json"), "--stacks", "0.02"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder, json.loads((folder / "r.json").read_text())[0], done.stdout


def test_a_smoke_run_reports_every_trial(smoke_run):
    _, report, stdout = smoke_run
    assert report["trials"] == 3 and not report["partial"]
    assert 0 < report["steps_share"] < 1 and report["wall_s"] > 0
    assert "share of wall time in training steps" in stdout and "cut short" not in stdout


def test_a_run_with_stacks_samples_the_study_process_and_reports_the_first_warm_up(smoke_run):
    folder, report, stdout = smoke_run
    samples = stack_samples.read_samples((folder / f"{report['study']}.stacks").read_text())
    assert len(samples) > 5  # the study ran for seconds, 0.05 s apart
    assert any(file.endswith("training/loop.py") for _, frames in samples for file, _ in frames)
    assert report["first_trial_warmup_stacks"][0].startswith("main thread,")  # samples inside the warm-up's window
    assert "the first trial's warm-up, by sampled stacks" in stdout


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
    args = type("Args", (), {"smoke": True, "steps": 3, "trials": 3, "workers": "1", "compile": False, "stacks": 0,
                             "compile_scope": "layers", "seed": 0})()
    before = signal.getsignal(signal.SIGTERM)
    run = bench.run_study("cut", tmp_path, args, env={})
    assert run["partial"] and StudyStillRunning.signals == [signal.SIGINT]
    assert StudyStillRunning.kwargs["start_new_session"]  # the group's SIGTERM does not kill it before its Ctrl-C
    assert "cut short" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is before


def test_tritons_autotuning_prints_are_summed_per_kernel():
    # Triton 3.6's TRITON_PRINT_AUTOTUNING format (autotuner.py), the key a tuple with commas of its own
    log = "".join(f"Triton autotuning for function {name},\nwith key as {key},\nfinished after {s:.2f}s,\n"
                  f"best config selected: BLOCK_SIZE_M: 64, num_warps: 4;\nstep 3 loss 1.2\n"
                  for name, key, s in [("_chunk_scan_bwd_dx_kernel", (256, 64, 128, "torch.bfloat16"), 1.5),
                                       ("_chunk_cumsum_bwd_kernel", (256, 24), 0.25),
                                       ("_chunk_scan_bwd_dx_kernel", (128, 64, 64, "torch.float32"), 2.0)])
    assert bench.autotuned(log) == {"_chunk_scan_bwd_dx_kernel": [2, 3.5], "_chunk_cumsum_bwd_kernel": [1, 0.25]}
    assert bench.autotuned("no autotuning here") == {}
