"""`archsearch study fidelity` keeps every finished retraining: Ctrl-C after k long runs leaves k stored, the same
command trains only the rest and measures what an uninterrupted call measures, and a time limit stops starting
runs in time and stores a partial measurement over the candidates finished. SQLite and PostgreSQL."""

import signal

import pytest

from archsearch.cli import main
from archsearch.storage import Database, records
from archsearch.storage import rungs as rung_rows
from archsearch.studies import fidelity as fidelity_module
from archsearch.studies import load_study
from archsearch.studies.fidelity import measure_fidelity

from studies_helpers import ToyEvaluator, run_study

SPACE = {"parameters": {"d_model": {"type": "categorical", "choices": [32, 48, 64, 128, 256]}}}
RECIPE = {"steps": 6, "warmup": 2, "eval_every": 2}
CHOICE = dict(factor=4, front=True, random_k=4, seeds=2)  # the front (1) and 4 others: 5 long runs + 1 noise run


class Clock:
    """The time limit's clock: a retraining advances it by its recipe's steps (a long run 24 s, the noise run 6 s)."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Retraining:
    """Toy retraining with long values that reorder the short ones a little (a tau strictly between -1 and 1);
    every call is counted in `calls`, and `on_call(n)` runs before the n-th call's result returns."""

    def __init__(self, recipe, seed, calls, clock=None, on_call=None):
        self.recipe, self.seed, self.calls, self.clock, self.on_call = recipe, seed, calls, clock, on_call
        self.inner = ToyEvaluator()

    def __call__(self, spec, callback, *, out_dir=None):
        self.calls.append((spec.d_model, self.recipe["steps"], self.seed))
        result = self.inner(spec, callback)
        if self.recipe["steps"] > RECIPE["steps"]:
            result["metrics"]["val_loss"] += 0.05 * ((spec.d_model // 16) % 3)
        result["metrics"]["val_loss"] += 0.001 * self.seed
        if self.clock is not None:
            self.clock.now += self.recipe["steps"]
        if self.on_call is not None:
            self.on_call(len(self.calls))
        return result


@pytest.fixture
def fidelity_study(write_study):
    def make(url):
        path = write_study(n_trials=5, sampler={"type": "grid"}, space=SPACE, constraints={},
                           objectives=["val_loss"], recipe=RECIPE)
        run_study(path, url)
        return path

    return make


def _measure(path, url, calls, **kwargs):
    clock, on_call = kwargs.pop("clock", None), kwargs.pop("on_call", None)
    return measure_fidelity(load_study(path), storage=url, **{**CHOICE, **kwargs}, resamples=200,
                            evaluator_for=lambda recipe, seed: Retraining(recipe, seed, calls, clock, on_call))


def _stored(url):
    with Database(url) as db:
        study = records.study_by_name(db, "toy")
        return list(rung_rows.fidelity_runs(db, study.id).values()), rung_rows.fidelity_of(db, study.id)


def _sigint():
    # raised in this (the main) thread: os.kill may hand a process-directed signal to another thread, whose C
    # handler can run after the next bytecodes here (seen under load: the held SIGINT arrived after release)
    signal.raise_signal(signal.SIGINT)


@pytest.fixture
def uninterrupted(fidelity_study, tmp_path):
    """What one uninterrupted call measures (on its own SQLite file)."""
    url = f"sqlite:///{tmp_path / 'whole.db'}"
    path = fidelity_study(url)
    calls = []
    report = _measure(path, url, calls)
    assert report.measured and not report.partial and len(calls) == 6
    return report


@pytest.mark.parametrize("k", [0, 2, 5])  # during the first long run, the third, the noise run
def test_ctrl_c_after_k_runs_keeps_k_and_the_rerun_trains_only_the_rest(k, storage_url, fidelity_study,
                                                                        uninterrupted):
    path = fidelity_study(storage_url)
    calls = []

    def interrupt(n):  # a real SIGINT while the (k+1)-th retraining is still running
        if n == k + 1:
            _sigint()

    report = _measure(path, storage_url, calls, on_call=interrupt)
    assert report.interrupted and not report.measured
    assert (report.stored_runs, report.planned_runs) == (k, 6)
    assert "interrupted (Ctrl-C): " + f"{k} of 6 retrainings stored; run the same command to continue" in \
        report.lines()[0]
    runs, measurements = _stored(storage_url)
    assert len(runs) == k and measurements == []
    assert all(r.status == "completed" and r.wall_time_s >= 0 for r in runs)

    again = []
    rerun = _measure(path, storage_url, again)
    assert len(again) == 6 - k and set(again).isdisjoint(calls[:k])  # only the missing ones are trained
    assert rerun.measured and not rerun.partial
    assert rerun.stats == uninterrupted.stats and rerun.candidates == uninterrupted.candidates
    assert rerun.noise == uninterrupted.noise
    runs, (measurement,) = _stored(storage_url)
    assert len(runs) == 6 and measurement.stats == uninterrupted.stats and measurement.n_chosen == 5
    assert not measurement.partial

    third = []  # a third call reuses everything: nothing trains, the same figures again
    assert _measure(path, storage_url, third).stats == uninterrupted.stats and third == []


def test_ctrl_c_while_a_finished_run_is_being_stored_keeps_it(sqlite_url, fidelity_study, monkeypatch):
    path = fidelity_study(sqlite_url)
    store = rung_rows.store_fidelity_run
    count = {"n": 0}

    def store_then_interrupted(*args, **kwargs):
        count["n"] += 1
        if count["n"] == 2:
            _sigint()  # arrives while the second run is written: held until the row is stored
        return store(*args, **kwargs)

    monkeypatch.setattr(rung_rows, "store_fidelity_run", store_then_interrupted)
    report = _measure(path, sqlite_url, [])
    assert report.interrupted and report.stored_runs == 2 and len(_stored(sqlite_url)[0]) == 2


def test_a_time_limit_measures_the_candidates_finished_and_marks_it_partial(storage_url, fidelity_study, monkeypatch,
                                                                            uninterrupted):
    path = fidelity_study(storage_url)
    clock = Clock()
    monkeypatch.setattr(fidelity_module, "_clock", clock)
    calls = []
    # long runs take 24 s: the first ends at 24, the second at 48; a third would end at 72 > 60, so none starts;
    # the 6 s noise run still fits (48 + 6 <= 60)
    report = _measure(path, storage_url, calls, timeout_s=60, clock=clock)
    assert [c[1] for c in calls] == [24, 24, 6]
    assert report.measured and report.partial and report.stopped_by == "time limit"
    assert len(report.candidates) == 2 and report.n_chosen == 5 and report.stats["val_loss"]["n"] == 2
    assert report.candidates == uninterrupted.candidates[:2] and report.noise == uninterrupted.noise
    assert "partial: 2 of 5 candidates" in report.lines()[0]
    runs, (measurement,) = _stored(storage_url)
    assert len(runs) == 3 and measurement.partial and measurement.n_chosen == 5 and len(measurement.candidates) == 2

    again = []  # without a limit the rerun trains the 3 missing long runs only, and measures it whole
    whole = _measure(path, storage_url, again)
    assert [c[1] for c in again] == [24, 24, 24] and not whole.partial and whole.stats == uninterrupted.stats


def test_a_time_limit_too_short_for_two_candidates_stores_the_runs_and_measures_nothing(sqlite_url, fidelity_study,
                                                                                        monkeypatch):
    path = fidelity_study(sqlite_url)
    clock = Clock()
    monkeypatch.setattr(fidelity_module, "_clock", clock)
    calls = []
    report = _measure(path, sqlite_url, calls, timeout_s=20, clock=clock)  # the first run (24 s) ends past 20
    assert len(calls) == 1 and not report.measured and report.partial and report.stats == {}
    assert "1 of 6 retrainings stored" in report.lines()[0] and "a ranking needs >= 2" in report.lines()[0]
    runs, measurements = _stored(sqlite_url)
    assert len(runs) == 1 and measurements == []


def test_a_time_limit_uses_the_run_times_stored_by_an_earlier_call(sqlite_url, fidelity_study, monkeypatch):
    path = fidelity_study(sqlite_url)
    clock = Clock()
    monkeypatch.setattr(fidelity_module, "_clock", clock)
    _measure(path, sqlite_url, [], timeout_s=20, clock=clock)  # one long run stored: 24 s
    clock.now = 0.0
    calls = []
    report = _measure(path, sqlite_url, calls, timeout_s=30, clock=clock)
    # the next long run would take 24 s (the stored one's time): it starts at 0 and fits, the one after does not
    # (24 + 24 > 30); the noise run (6 s) ends at 30
    assert [c[1] for c in calls] == [24, 6] and len(report.candidates) == 2 and report.partial


def test_the_command_says_what_is_stored_after_ctrl_c_and_after_a_time_limit(sqlite_url, fidelity_study,
                                                                            monkeypatch, capsys):
    from archsearch.studies import evaluate

    path = fidelity_study(sqlite_url)
    calls = []
    clock = Clock()
    interrupt_at = {"n": 3}

    def on_call(n):
        if n == interrupt_at["n"]:
            _sigint()

    monkeypatch.setattr(evaluate, "TrainEvaluator", lambda task, recipe, seed, device, recall:
                        Retraining(recipe, seed, calls, clock, on_call))
    monkeypatch.setattr(fidelity_module, "_clock", clock)
    capsys.readouterr()
    args = ["study", "fidelity", str(path), "--storage", sqlite_url, "--factor", "4", "--random", "4"]
    assert main(args) == 130  # two long runs (24 s each) stored, the third interrupted
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C): 2 of 6 retrainings stored; run the same command to continue" in err
    assert "Traceback" not in err

    interrupt_at["n"] = None
    clock.now = 0.0
    assert main([*args, "--timeout", "30"]) == 0  # 2 stored + 1 long run (24 s) + the noise run (6 s)
    out = capsys.readouterr().out
    assert "partial: 3 of 5 candidates" in out and "Kendall tau" in out and "(n=3)" in out

    assert main([*args, "--json"]) == 0  # the rest, measured whole
    assert '"partial": false' in capsys.readouterr().out and len(calls) == 3 + 2 + 2


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_bad_timeout_exits_2(write_study, sqlite_url, capsys, value):
    path = write_study(objectives=["val_loss"])
    assert main(["study", "fidelity", str(path), "--storage", sqlite_url, "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "Traceback" not in err
