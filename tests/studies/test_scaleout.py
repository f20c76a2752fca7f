"""Many worker processes on one PostgreSQL study: no lost or duplicated trial; a worker killed with SIGKILL
mid-trial has its trial failed by the heartbeat and retried, and the study finishes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from archsearch.storage import Database
from archsearch.storage import records
from archsearch.storage.urls import full_url, parse


def _load(url):
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; name the installed driver for Optuna.
    return optuna.load_study(study_name="toy", storage=full_url(parse(url)))

pytestmark = pytest.mark.postgres

WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {helpers!r})
    from studies_helpers import ToyEvaluator
    from archsearch.studies import StudyRunner, load_study

    runner = StudyRunner(load_study({study!r}), ToyEvaluator(sleep_s={sleep_s}), storage={url!r}, live=False,
                         worker_prefix="[worker {index}] ", seed_offset={index})
    runner.open()
    runner.run()
    runner.close()
""")


def _spawn(tmp_path, study, url, index, sleep_s):
    script = tmp_path / f"worker{index}.py"
    script.write_text(WORKER.format(helpers=str(Path(__file__).parent), study=str(study), url=url, index=index,
                                    sleep_s=sleep_s))
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _rows(url):
    with Database(url) as db:
        study = records.study_by_name(db, "toy")
        return records.trials_of(db, study.id), records.slots_taken(db, study.id)


def _kill_mid_trial(victim, url) -> int:
    """SIGKILL `victim` once one of its trials is training; the number of that trial."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            rows, _ = _rows(url)
        except Exception:  # noqa: BLE001 - tables may not exist in the first instants
            rows = []
        running = [r for r in rows if r.status == "running" and r.worker.endswith(f":{victim.pid}")
                   and r.spec is not None]
        if running:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            return running[0].number
        time.sleep(0.1)
    raise AssertionError("the victim never started a trial")


def test_four_workers_ten_trials_each_no_lost_or_duplicated_trial(write_study, pg_url, tmp_path):
    study = write_study(n_trials=40, constraints={}, sampler={"type": "tpe", "n_startup_trials": 5})
    procs = [_spawn(tmp_path, study, pg_url, i, 0.01) for i in range(4)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    rows, slots = _rows(pg_url)
    trials = _load(pg_url).trials
    assert slots == 40 and len(rows) == 40 and len(trials) == 40
    assert sorted(r.number for r in rows) == list(range(40)) == sorted(t.number for t in trials)
    assert sorted(r.optuna_trial_id for r in rows) == sorted(t._trial_id for t in trials)
    # a candidate already trained is stored as a duplicate of its first trial, never trained again
    by_number = {r.number: r for r in rows}
    assert all(r.status in ("completed", "duplicate") for r in rows) and all(t.state == TrialState.COMPLETE
                                                                          for t in trials)
    for r in rows:
        if r.status == "duplicate":
            first = by_number[r.duplicate_of]
            assert first.status == "completed" and first.candidate_key == r.candidate_key and first.number < r.number
    trained = [r.candidate_key for r in rows if r.status == "completed"]
    assert len(trained) >= 10  # the toy space has more distinct candidates than that; most trials are new ones
    workers = {r.worker for r in rows}
    assert len(workers) == 4  # every process took part
    firsts = [min((r for r in rows if r.worker == w), key=lambda r: r.number).params for w in workers]
    assert len({repr(sorted(p.items())) for p in firsts}) > 1  # own sampler seeds: not the same candidates
    for output in outputs:  # each worker printed only its own trials
        assert output.count("completed") >= 1


def test_killed_worker_trial_is_failed_and_retried_and_the_study_finishes(write_study, pg_url, tmp_path):
    study = write_study(n_trials=8, constraints={}, heartbeat={"interval_s": 1, "grace_s": 3})
    procs = [_spawn(tmp_path, study, pg_url, i, 0.4) for i in range(3)]  # ~1.6 s of training per trial
    victim = procs[0]
    killed_number = _kill_mid_trial(victim, pg_url)
    outputs = [p.communicate(timeout=240)[0] for p in procs[1:]]
    assert [p.returncode for p in procs[1:]] == [0, 0], outputs

    rows, slots = _rows(pg_url)
    by_number = {r.number: r for r in rows}
    killed = by_number[killed_number]
    assert killed.status == "failed" and killed.error.startswith("worker lost")
    retries = [r for r in rows if r.retry_of == killed_number]
    assert len(retries) == 1 and retries[0].status == "completed" and retries[0].params == killed.params
    trials = {t.number: t for t in _load(pg_url).trials}
    assert trials[killed_number].state == TrialState.FAIL
    completed = [r for r in rows if r.status == "completed"]
    assert slots == 8 and len(completed) == 8  # 7 new trials + the retry of the killed one
    assert all(trials[r.number].state == TrialState.COMPLETE for r in completed)
    assert not [r for r in rows if r.status == "running"]


def test_rerun_after_the_only_worker_was_killed_runs_the_retry_and_leaves_nothing_waiting(write_study, pg_url,
                                                                                           tmp_path):
    # One trial: the rerun finds no free slot, only the dead worker's trial, which goes stale while it waits.
    study = write_study(n_trials=1, constraints={}, heartbeat={"interval_s": 1, "grace_s": 3})
    killed_number = _kill_mid_trial(_spawn(tmp_path, study, pg_url, 0, 2.0), pg_url)
    rerun = _spawn(tmp_path, study, pg_url, 1, 0.01)  # the same study, run again by hand
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    rows, slots = _rows(pg_url)
    retries = [r for r in rows if r.retry_of == killed_number]
    assert len(retries) == 1 and retries[0].status == "completed"
    states = [t.state for t in _load(pg_url).trials]
    assert TrialState.WAITING not in states and TrialState.RUNNING not in states, states
    assert slots == 1 and len([r for r in rows if r.status == "completed"]) == 1
