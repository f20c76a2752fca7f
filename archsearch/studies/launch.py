"""Running a study file: in this process or in K worker processes sharing its storage; reading a study's best
trials. A library: it returns outcomes and raises errors; printing and exit statuses are the CLI's
(archsearch/cli/study_cmds.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..storage import Database, redact
from ..storage.urls import is_sqlite, parse
from .bounds import check_run_options
from .compile_cache import use_study_cache
from .preflight import preflight
from .runner import RunSummary, StudyRunner, best_trials
from .identity import renamed
from .interrupts import InterruptGuard
from .study_file import load_study


def _evaluator(study):
    from .evaluate import TrainEvaluator

    file = study.file
    return TrainEvaluator(file.task, file.recipe, seed=file.seed, device=file.device,
                          nproc=file.gpus_per_trial if file.gpus_per_trial > 1 else None,
                          recall=any(o.metric == "recall" for o in file.objectives))


STORAGE_ENV = "ARCHSEARCH_WORKER_STORAGE"  # how `study run --workers N` hands its URL (password and all) to workers
SPAWNED_ENV = "ARCHSEARCH_SPAWNED_WORKER"  # set for a worker of `study run --workers N`: its parent reports Ctrl-C


def spawned_worker() -> bool:
    """Whether this process is a worker `study run --workers N` started (its parent reports Ctrl-C once)."""
    return bool(os.environ.get(SPAWNED_ENV))


def _silent(message: str) -> None:
    pass


@dataclass(frozen=True)
class StudyOutcome:
    """What running a study file did: its summary (`summary.interrupted`: a Ctrl-C stopped it, finished trials are
    stored and the running ones queued again), the objectives' metrics, the storage URL (password and all, for
    the caller to redact) and the number of worker processes it started (0: it ran in this process)."""

    summary: RunSummary
    objectives: list[str]
    url: str
    workers: int


def run_study(file: str, *, storage: str | None, n_trials: int | None, timeout_s: float | None,
              workers: int | str, live: bool | None, seed_offset: int = 0, as_name: str | None = None,
              note: Callable[[str], None] = _silent) -> StudyOutcome:
    """Run (or resume) the study of `file` in this process, or in `workers` worker processes ("auto": one per
    gpus_per_trial visible GPUs). `note(text)` receives what the caller may show: the worker plan, the compile
    cache folder, SQLite's lock with several workers. Raises UserError for a bad file or option."""
    from .gpus import auto_plan, parse_workers

    count = parse_workers(str(workers))
    check_run_options(n_trials=n_trials, timeout_s=timeout_s, workers=count, seed_offset=seed_offset)
    study = preflight(file)  # every problem of the file at once, before storage is opened or a trial starts
    study = renamed(study, as_name)  # --as NEW_NAME: the file's question as a new study
    plan = None
    if count is None:  # auto: one worker per gpus_per_trial visible GPUs, each seeing only its own
        plan = auto_plan(study.file.gpus_per_trial)
        note(plan.note)
        count = 1 if plan.on_cpu else plan.workers
    runner = StudyRunner(study, _evaluator(study), storage=storage, n_trials=n_trials, timeout_s=timeout_s, live=live,
                         seed_offset=seed_offset)
    # before this process compiles and before workers start (they inherit it): compile/autotune caches persist
    cache = use_study_cache(runner.url, study.name)
    if "TORCHINDUCTOR_CACHE_DIR" in cache:
        note(f"compile cache: {Path(cache['TORCHINDUCTOR_CACHE_DIR']).parent}")
    objectives = [o.metric for o in study.file.objectives]
    runner.open()  # creates the study (or refuses a mismatching one) once, before any worker starts
    if count == 1 and (plan is None or plan.on_cpu):
        try:
            summary = runner.run()
        finally:
            runner.close()
        return StudyOutcome(summary, objectives, runner.url, 0)
    if is_sqlite(parse(runner.url)):
        note(f"note: {count} workers on a SQLite file work but serialize on its lock; use PostgreSQL for many "
             "workers")
    envs = [plan.env(i, os.environ) if plan is not None else os.environ.copy() for i in range(count)]
    summary = _run_workers(file, runner, count, n_trials, timeout_s, seed_offset, envs)
    return StudyOutcome(summary, objectives, runner.url, count)


def _run_workers(file: str, runner: StudyRunner, workers: int, n_trials: int | None,
                 timeout_s: float | None, seed_offset: int, envs: list[dict[str, str]]) -> RunSummary:
    # The URL goes through the environment, not the command line, where `ps` would show its password.
    command = [sys.executable, "-m", "archsearch.cli", "study", "worker", file, "--as", runner.study.name]
    if n_trials is not None:
        command += ["--n-trials", str(n_trials)]
    if timeout_s is not None:
        command += ["--timeout", repr(float(timeout_s))]
    procs = []
    interrupted = False
    try:
        for i in range(workers):
            # Each worker in its own session: a terminal's Ctrl-C reaches only this process, which passes exactly
            # one SIGINT on to each worker (a second one could cut a worker's own bookkeeping short). A Ctrl-C
            # during a spawn is raised right after it (no worker half-started, none started after it), and the
            # worker starts with SIGINT blocked: a SIGINT while it imports and opens the study waits, and
            # run_worker raises it before its first trial.
            with _sigint_held_for_spawn():
                procs.append(subprocess.Popen(command + ["--prefix", f"[worker {i}] ",
                                                         "--seed-offset", str(seed_offset * workers + i)],
                                              env={**envs[i], STORAGE_ENV: runner.url, SPAWNED_ENV: "1"},
                                              start_new_session=True))
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        with _sigint_ignored():
            _interrupt_workers(procs)
    except BaseException:  # a worker could not start: the started ones, in their own sessions, must not run on
        with _sigint_ignored():
            _interrupt_workers(procs)
        runner.close()
        raise
    interrupted = interrupted or any(proc.returncode == 130 for proc in procs)
    try:
        return RunSummary(runner.study.name, redact(runner.url), runner.counts(), runner.best_trials(), interrupted,
                          runner.n_trials)
    finally:
        runner.close()


def _interrupt_workers(procs: list[subprocess.Popen], every_s: float = 5.0) -> None:
    """SIGINT each worker, again every `every_s` while it runs: Python drops a KeyboardInterrupt that lands in a
    finalizer ("Exception ignored in ..."), and a worker must not train on because of that. A repeated SIGINT is
    harmless: a worker holds Ctrl-C while it records its interrupted trial."""
    while any(proc.poll() is None for proc in procs):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=every_s)
            except subprocess.TimeoutExpired:
                break


@contextmanager
def _sigint_held_for_spawn():
    """A SIGINT during the block is raised after it. Blocked in this thread, so a process started meanwhile
    inherits the mask (it survives fork and exec); only noted if another thread of ours receives it."""
    with InterruptGuard().holding():
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def take_sigint_back() -> None:
    """A worker that `study run` spawned: Ctrl-C raises from here on, a SIGINT that came while it started included."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextmanager
def _sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_worker(file: str, *, storage: str | None, n_trials: int | None, timeout_s: float | None, prefix: str,
               seed_offset: int, as_name: str | None = None) -> RunSummary:
    """One worker process of `run_study(workers=K)` (or one started by hand): runs trials of the shared study."""
    url = storage or os.environ.get(STORAGE_ENV)
    if not url:
        raise UserError(f"study worker: give --storage URL (or set {STORAGE_ENV})")
    check_run_options(n_trials=n_trials, timeout_s=timeout_s)  # its seed offset is the parent's, spread
    study = renamed(preflight(file), as_name)
    use_study_cache(url, study.name)  # a worker started by hand; one started by `study run` has it already
    runner = StudyRunner(study, _evaluator(study), storage=url, n_trials=n_trials, timeout_s=timeout_s,
                         live=False, worker_prefix=prefix, seed_offset=seed_offset,
                         announce_interrupt=not spawned_worker())
    runner.open()
    try:
        if spawned_worker():  # started with SIGINT blocked (_run_workers)
            take_sigint_back()
        summary = runner.run()
        if summary.interrupted:  # the parent may repeat its SIGINT; this worker is done and only exits now
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return summary
    finally:
        runner.close()


@dataclass(frozen=True)
class BestTrials:
    """The best feasible trials of a stored study (`best`, as `runner.best_trials` gives them)."""

    name: str
    storage: str  # redacted
    metrics: list[str]
    best: list[dict]

    def summary(self) -> RunSummary:
        return RunSummary(self.name, self.storage, {}, self.best)


def best_of(file_or_name: str, *, storage: str | None, limit: int) -> BestTrials:
    """The best trials of the study of a study file (its storage, unless `storage` is given), or of a stored
    study named `file_or_name` in `storage`. Never creates a missing database."""
    from ..storage import records
    from .objectives import Objective

    if Path(file_or_name).is_file():
        study = load_study(file_or_name)
        name, url = study.name, storage or study.file.storage
    else:
        if storage is None:
            raise UserError(f"{file_or_name!r} is not a file; to name a stored study give --storage URL too")
        name, url = file_or_name, storage
    with Database(url, create=False, label="--storage") as db:  # a reader never creates a missing file
        record = records.study_by_name(db, name)
        if record is None:
            stored = [s["name"] for s in records.list_studies(db)]
            raise UserError(f"no study named {name!r} in {redact(url)}; stored: {', '.join(stored) or '(none)'}")
        objectives = [Objective.model_validate(o) for o in record.objectives]
        best = best_trials(db, record.id, objectives, limit)
    return BestTrials(name, redact(url), [o.metric for o in objectives], best)
