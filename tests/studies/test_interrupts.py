"""Ctrl-C at every point of a trial's life loses nothing and trains nothing twice; the message is one line; a
diverged trial is one line; `study run --workers N` exits 130; n_trials counts a trial and its retries once."""

import signal
import subprocess
import sys
import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from archsearch.storage import Database, records
from archsearch.storage.tally import study_tally, tally_rows
from archsearch.studies import StudyRunner, load_study
from archsearch.studies import runner as runner_module
from archsearch.studies.interrupts import InterruptGuard

from hypothesis import given, settings, strategies as st
from studies_helpers import ToyEvaluator, run_study


def _sigint():
    # raised in this (the main) thread: os.kill may hand a process-directed signal to another thread, whose C
    # handler can run after the next bytecodes here (seen under load: the held SIGINT arrived after release)
    signal.raise_signal(signal.SIGINT)


def _inject(monkeypatch, point):
    """Send this process a real SIGINT once, at `point` of the second trial."""
    state = {"calls": 0}

    def once(real, when=lambda *a, **k: True):
        def wrapper(*args, **kwargs):
            if when(*args, **kwargs):
                state["calls"] += 1
                if state["calls"] == 2:
                    if point.endswith("before"):
                        _sigint()
                        return real(*args, **kwargs)
                    result = real(*args, **kwargs)
                    _sigint()
                    return result
            return real(*args, **kwargs)
        return wrapper

    if point.startswith("take_slot"):
        monkeypatch.setattr(records, "take_slot", once(records.take_slot))
    elif point.startswith("ask"):  # Optuna has just created the trial (RUNNING), nothing of ours recorded
        monkeypatch.setattr(optuna.Study, "ask", once(optuna.Study.ask))
    elif point.startswith("start_trial"):
        monkeypatch.setattr(records, "start_trial", once(records.start_trial))
    elif point.startswith("finish"):  # the final status is being written
        monkeypatch.setattr(records, "update_trial", once(records.update_trial, lambda *a, **k: "status" in k))


@pytest.mark.parametrize("point", ["take_slot-after", "ask-after", "start_trial-before", "start_trial-after",
                                   "finish-before", "finish-after"])
def test_ctrl_c_at_any_point_loses_no_trial_and_trains_none_twice(point, write_study, sqlite_url, monkeypatch,
                                                                   capsys):
    path = write_study(n_trials=4, constraints={})
    evaluator = ToyEvaluator()
    with monkeypatch.context() as patch:
        _inject(patch, point)
        summary = run_study(path, sqlite_url, evaluator)
    assert summary.interrupted
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if "interrupted (Ctrl-C)" in line]
    assert len(lines) == 1 and "run the same command to resume" in lines[0]
    assert "Traceback" not in out.out + out.err

    summary = run_study(path, sqlite_url, evaluator)  # resume
    assert not summary.interrupted
    with Database(sqlite_url) as db:
        study = records.study_by_name(db, "toy")
        rows = records.trials_of(db, study.id)
        tally = study_tally(db, study.id)
    assert tally.done == 4 and tally.pending == 0, (point, tally)
    assert sum(r.status == "completed" for r in rows) == 4
    assert not [r for r in rows if r.status == "running"]
    # Each candidate trained once; only one interrupted mid-training (none here: the points are outside training)
    # may train again.
    assert evaluator.calls == 4
    waiting = optuna.load_study(study_name="toy", storage=sqlite_url).get_trials(states=(TrialState.WAITING,))
    assert not waiting


def test_ctrl_c_during_training_queues_the_trial_and_counts_it_once(write_study, sqlite_url, capsys):
    path = write_study(n_trials=3, constraints={})

    class InterruptSecond(ToyEvaluator):
        def __call__(self, spec, callback, *, out_dir=None):
            if self.calls == 1:
                self.calls += 1
                _sigint()
                time.sleep(1)  # the signal arrives here, mid-training
            return super().__call__(spec, callback, out_dir=out_dir)

    summary = run_study(path, sqlite_url, InterruptSecond())
    assert summary.interrupted and summary.target == 3
    line = [x for x in capsys.readouterr().out.splitlines() if "interrupted (Ctrl-C)" in x]
    assert line == ["interrupted (Ctrl-C): 1 of 3 trials stored; trial 1 is queued to run again; run the same "
                    "command to resume"]
    summary = run_study(path, sqlite_url, ToyEvaluator())
    assert summary.done == 3 and summary.counts == {"completed": 3}  # 4 rows, 3 candidates
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    assert len(rows) == 4 and [r.status for r in rows].count("interrupted") == 1
    from archsearch.cli import main

    capsys.readouterr()
    assert main(["study", "list", "--storage", sqlite_url]) == 0
    assert "3 of 3 trials: completed 3" in capsys.readouterr().out  # not "4 trials of 3"


def test_a_diverged_trial_is_one_line_not_a_traceback(write_study, sqlite_url, capsys, caplog):
    path = write_study(n_trials=2, constraints={})
    summary = run_study(path, sqlite_url, ToyEvaluator(diverge_when=lambda spec: True))
    assert summary.counts == {"diverged": 2}
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err + caplog.text
    assert [line for line in out.out.splitlines() if "diverged" in line][0].startswith("trial    0 diverged")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["completed", "failed", "interrupted", "running",
                                                              "pruned", "diverged"])), max_size=12))
def test_the_tally_counts_each_candidate_once_by_its_latest_attempt(chains):
    # chains[i] = (retries, final status); earlier attempts of a chain were interrupted or lost.
    rows, number = [], 0
    for retries, status in chains:
        root = number
        for attempt in range(retries + 1):
            last = attempt == retries
            rows.append((number, None if attempt == 0 else root, status if last else "interrupted"))
            number += 1
    tally = tally_rows(rows)
    assert sum(tally.by_status.values()) == len(chains)
    assert tally.done == sum(status not in ("running", "interrupted") for _, status in chains)
    assert tally.attempts == len(rows)


def test_the_guard_delivers_a_held_sigint_once_at_release():
    guard = InterruptGuard()
    guard.hold()
    _sigint()
    _sigint()
    with pytest.raises(KeyboardInterrupt):
        guard.release()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with guard.holding(deliver=False):
        _sigint()  # dropped: a second Ctrl-C during the cleanup


def test_workers_get_the_storage_password_through_the_environment(write_study, monkeypatch, tmp_path):
    from archsearch.studies import launch

    seen = []

    class FakePopen:
        def __init__(self, args, env=None, **kwargs):
            seen.append((args, env))
            self.returncode = 0

        def wait(self):
            return 0

        def poll(self):
            return 0

    class FakeRunner(_FakeRunner):
        url = "postgresql://alice:s3cret@db.example/studies"

    monkeypatch.setattr(launch.subprocess, "Popen", FakePopen)
    summary = launch._run_workers("s.yaml", FakeRunner(), 2, 2, None, 0, [{}, {}])
    assert len(seen) == 2
    for args, env in seen:
        assert not any("s3cret" in a for a in args) and env[launch.STORAGE_ENV] == FakeRunner.url
    assert "s3cret" not in summary.storage


class _FakeRunner:
    """The parts of a StudyRunner that _run_workers uses."""
    url = "sqlite:///unused.db"
    n_trials = 2

    class study:
        name = "toy"

    def counts(self):
        return {}

    def best_trials(self):
        return []

    def close(self):
        pass


class _FakeWorker:
    """subprocess.Popen's stand-in: records whether SIGINT was blocked when it was started, and signals sent."""

    def __init__(self, started, args, env=None, **kwargs):
        self.blocked_at_spawn = signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set())
        self.signals, self.returncode = [], None
        started.append(self)

    def send_signal(self, sig):
        self.signals.append(sig)
        self.returncode = 130

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            raise AssertionError("the study went on waiting for its workers after a Ctrl-C")
        return self.returncode


def test_a_ctrl_c_while_a_worker_starts_reaches_the_started_ones_and_starts_no_more(monkeypatch):
    """A Ctrl-C while `study run` spawned its workers used to be dropped (SIGINT was ignored around each spawn),
    so the study ran on. Now it is raised right after that spawn, the started worker gets it, and no other starts;
    each worker starts with SIGINT blocked, so it cannot die of it while it imports."""
    from archsearch.studies import launch

    started = []

    def spawn(*args, **kwargs):
        worker = _FakeWorker(started, *args, **kwargs)
        if len(started) == 1:
            _sigint()  # Ctrl-C while the first of three workers starts
        return worker

    monkeypatch.setattr(launch.subprocess, "Popen", spawn)
    summary = launch._run_workers("s.yaml", _FakeRunner(), 3, 2, None, 0, [{}, {}, {}])
    assert len(started) == 1 and started[0].blocked_at_spawn
    assert started[0].signals == [signal.SIGINT] and summary.interrupted
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())


def test_a_worker_that_cannot_start_stops_the_started_ones(monkeypatch):
    from archsearch.studies import launch

    started = []

    def spawn(*args, **kwargs):
        if len(started) == 2:
            raise OSError("Resource temporarily unavailable")
        return _FakeWorker(started, *args, **kwargs)

    closed = []
    runner = _FakeRunner()
    runner.close = lambda: closed.append(True)
    monkeypatch.setattr(launch.subprocess, "Popen", spawn)
    with pytest.raises(OSError, match="Resource temporarily"):
        launch._run_workers("s.yaml", runner, 3, 2, None, 0, [{}, {}, {}])
    assert [w.signals for w in started] == [[signal.SIGINT]] * 2 and closed


def test_a_process_started_while_sigint_is_held_starts_with_it_blocked():
    from archsearch.studies import launch

    with launch._sigint_held_for_spawn():
        child = subprocess.run([sys.executable, "-c", "import signal; print(signal.SIGINT in "
                                "signal.pthread_sigmask(signal.SIG_BLOCK, set()))"], capture_output=True, text=True)
    assert child.stdout.strip() == "True", child.stderr
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # ours is restored


def test_a_spawned_worker_gets_the_sigint_that_came_while_it_started():
    from archsearch.studies import launch

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # as _run_workers starts a worker
    try:
        _sigint()  # held pending while the worker imports and opens the study
        with pytest.raises(KeyboardInterrupt):
            launch.take_sigint_back()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_stored_study_row_has_the_url_redacted(write_study, sqlite_url):
    path = write_study(n_trials=1, constraints={}, storage="postgresql://alice:s3cret@db.example/x")
    runner = StudyRunner(load_study(path), ToyEvaluator(), storage=sqlite_url, live=False)
    runner.open()
    runner.close()
    with Database(sqlite_url) as db:
        stored = records.study_by_name(db, "toy").study_file["storage"]
    assert "s3cret" not in stored and stored.startswith("postgresql://alice:")


TINY = {
    "name": "tiny", "base": "nemotron-h-tiny",
    "space": {"parameters": {"d_model": {"type": "categorical", "choices": [32, 48]}}},
    "task": {"name": "mqar", "options": {"vocab": 32, "n_pairs": 2}},
    "recipe": {"steps": 400, "batch_size": 2, "seq_len": 16, "eval_every": 5, "eval_batches": 1, "warmup": 1},
    "objectives": ["val_loss"], "sampler": {"type": "random"}, "n_trials": 4, "device": "cpu",
    "heartbeat": {"interval_s": 1, "grace_s": 5},
}


def test_study_run_with_workers_exits_130_on_ctrl_c(tmp_path):
    """A real `archsearch study run --workers 2` and a real SIGINT, as a terminal would send it."""
    study = tmp_path / "tiny.yaml"
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study.write_text(yaml.safe_dump({**TINY, "storage": url}))
    proc = subprocess.Popen([sys.executable, "-m", "archsearch.cli", "study", "run", str(study), "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    started = False
    while time.monotonic() < deadline and proc.poll() is None and not started:
        time.sleep(0.5)
        if (tmp_path / "r.db").exists():
            try:
                with Database(url, create=False) as db:
                    study_row = records.study_by_name(db, "tiny")
                    started = study_row is not None and bool(records.trials_of(db, study_row.id, ("running",)))
            except Exception:  # the file exists but the tables are being created
                pass
    assert started, proc.communicate(timeout=30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    assert (out + err).count("interrupted (Ctrl-C)") == 1, (out, err)  # one line, the parent's; workers stay quiet
    with Database(url, create=False) as db:
        rows = records.trials_of(db, records.study_by_name(db, "tiny").id)
    assert rows and not [r for r in rows if r.status == "running"]


@pytest.mark.parametrize("spawned", [True, False])
def test_a_worker_interrupted_while_it_starts_is_quiet_when_its_parent_reports(monkeypatch, capsys, spawned):
    """The flaky case of the test above (CI, 2026-12-06): the second worker was still starting (outside a trial)
    when the parent passed Ctrl-C on, and printed its own 'interrupted (Ctrl-C) outside a trial' beside the
    parent's line. A worker the parent spawned exits 130 quietly; one started by hand still says it."""
    from archsearch.cli import main
    from archsearch.studies import launch

    def interrupted_at_start(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(launch, "run_worker", interrupted_at_start)
    if spawned:
        monkeypatch.setenv(launch.SPAWNED_ENV, "1")
    else:
        monkeypatch.delenv(launch.SPAWNED_ENV, raising=False)
    code = main(["study", "worker", "any.yaml", "--storage", "sqlite:///unused.db"])
    out, err = capsys.readouterr()
    assert code == 130 and "Traceback" not in out + err
    assert ("interrupted (Ctrl-C) outside a trial" in err) == (not spawned), err


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried_not_waited_on(write_study, sqlite_url):
    """kill -9 between Optuna creating a trial and its heartbeat thread starting: a RUNNING trial with no
    heartbeat. The next run must not wait on it forever (timeout_s is only a safety net here)."""
    path = write_study(n_trials=3, constraints={}, timeout_s=120, heartbeat={"interval_s": 1, "grace_s": 2})
    runner = StudyRunner(load_study(path), ToyEvaluator(), storage=sqlite_url, live=False)
    runner.open()
    assert records.take_slot(runner.db, runner.record.id, 3)
    orphan = runner.optuna_study.ask()  # what the dead worker left: a slot taken, a RUNNING trial, no row
    runner.close()
    time.sleep(2.5)
    started = time.monotonic()
    summary = run_study(path, sqlite_url, ToyEvaluator())
    assert time.monotonic() - started < 60
    assert summary.done == 3 and summary.counts == {"completed": 3}
    with Database(sqlite_url) as db:
        rows = records.trials_of(db, records.study_by_name(db, "toy").id)
    assert [r.retry_of for r in rows].count(orphan.number) == 1 and len(rows) == 3
