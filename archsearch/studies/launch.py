"""What `archsearch study run/worker/best` do: open the study, run it in this process or in K worker processes,
print the best trials and how to look at them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from ..storage import Database, redact
from ..storage.urls import is_sqlite, parse
from .bounds import check_run_options
from .compile_cache import use_study_cache
from .preflight import preflight
from .runner import RunSummary, StudyRunner, best_trials, describe_best
from .identity import renamed
from .study_file import load_study


def _evaluator(study):
    from .evaluate import TrainEvaluator

    file = study.file
    return TrainEvaluator(file.task, file.recipe, seed=file.seed, device=file.device,
                          nproc=file.gpus_per_trial if file.gpus_per_trial > 1 else None)


STORAGE_ENV = "ARCHSEARCH_WORKER_STORAGE"  # how `study run --workers N` hands its URL (password and all) to workers


def _print_summary(summary: RunSummary, objectives: list[str], url: str) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items()))
    target = f"{summary.done} of {summary.target} trials" if summary.target is not None else f"{summary.done} trials"
    print(f"\nstudy {summary.study}: {target}; {counts or 'no trials'}  (stored in {summary.storage})")
    if summary.best:
        print("best trials" + (" (Pareto front)" if len(objectives) > 1 else "") + ":")
        print("\n".join(describe_best(summary, objectives)))
    else:
        print("no feasible trial completed yet")
    print(f"\nlook at every trial:  archsearch dashboard --storage {redact(url)}")
    print(f"export them:          archsearch results export --storage {redact(url)} --format csv")


def _quiet_interrupt(run):
    """Run `run()`; a Ctrl-C outside a trial (while loading, opening storage, starting workers) ends the command
    with one line and exit status 130 instead of a traceback."""
    default_hook = sys.unraisablehook

    def hook(unraisable):  # a Ctrl-C landing in a finalizer is dropped by Python; do not print its traceback
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default_hook(unraisable)

    sys.unraisablehook = hook  # the parent of workers repeats its SIGINT, so a dropped one is not lost
    try:
        return run()
    except KeyboardInterrupt:
        print("\ninterrupted (Ctrl-C) outside a trial: finished trials are stored; run the same command to resume",
              file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        sys.unraisablehook = default_hook


def run_study_command(file: str, *, storage: str | None, n_trials: int | None, timeout_s: float | None,
                      workers: int | str, live: bool | None, seed_offset: int = 0, as_name: str | None = None) -> None:
    _quiet_interrupt(lambda: _run_study(file, storage=storage, n_trials=n_trials, timeout_s=timeout_s,
                                        workers=workers, live=live, seed_offset=seed_offset, as_name=as_name))


def _run_study(file: str, *, storage: str | None, n_trials: int | None, timeout_s: float | None,
               workers: int | str, live: bool | None, seed_offset: int, as_name: str | None = None) -> None:
    from .gpus import auto_plan, parse_workers

    count = parse_workers(str(workers))
    check_run_options(n_trials=n_trials, timeout_s=timeout_s, workers=count, seed_offset=seed_offset)
    study = preflight(file)  # every problem of the file at once, before storage is opened or a trial starts
    study = renamed(study, as_name)  # --as NEW_NAME: the file's question as a new study
    plan = None
    if count is None:  # auto: one worker per gpus_per_trial visible GPUs, each seeing only its own
        plan = auto_plan(study.file.gpus_per_trial)
        print(plan.note, file=sys.stderr)
        workers = 1 if plan.on_cpu else plan.workers
    else:
        workers = count
    evaluator = _evaluator(study)
    runner = StudyRunner(study, evaluator, storage=storage, n_trials=n_trials, timeout_s=timeout_s, live=live,
                         seed_offset=seed_offset)
    # before this process compiles and before workers start (they inherit it): compile/autotune caches persist
    cache = use_study_cache(runner.url, study.name)
    if "TORCHINDUCTOR_CACHE_DIR" in cache:
        print(f"compile cache: {Path(cache['TORCHINDUCTOR_CACHE_DIR']).parent}", file=sys.stderr)
    objectives = [o.metric for o in study.file.objectives]
    if workers == 1 and (plan is None or plan.on_cpu):
        runner.open()
        try:
            summary = runner.run()
        finally:
            runner.close()
        _print_summary(summary, objectives, runner.url)
        if summary.interrupted:
            raise SystemExit(130)
        return
    runner.open()  # creates the study (or refuses a mismatching one) once, before any worker starts
    if is_sqlite(parse(runner.url)):
        print(f"note: {workers} workers on a SQLite file work but serialize on its lock; use PostgreSQL for "
              "many workers", file=sys.stderr)
    envs = [plan.env(i, os.environ) if plan is not None else os.environ.copy() for i in range(workers)]
    summary = _run_workers(file, runner, workers, n_trials, timeout_s, seed_offset, envs)
    _print_summary(summary, objectives, runner.url)
    if summary.interrupted:
        of = f" of {summary.target}" if summary.target is not None else ""
        print(f"interrupted (Ctrl-C): {summary.done}{of} trials stored, each worker's running trial queued again; "
              "run the same command to resume", file=sys.stderr)
        raise SystemExit(130)


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
            # one SIGINT on to each worker (a second one could cut a worker's own bookkeeping short).
            procs.append(subprocess.Popen(command + ["--prefix", f"[worker {i}] ",
                                                     "--seed-offset", str(seed_offset * workers + i)],
                                          env={**envs[i], STORAGE_ENV: runner.url}, start_new_session=True))
        for proc in procs:
            proc.wait()
    except KeyboardInterrupt:
        interrupted = True
        with _sigint_ignored():
            _interrupt_workers(procs)
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
def _sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_worker(file: str, *, storage: str | None, n_trials: int | None, timeout_s: float | None, prefix: str,
               seed_offset: int, as_name: str | None = None) -> None:
    def work():
        url = storage or os.environ.get(STORAGE_ENV)
        if not url:
            raise UserError(f"study worker: give --storage URL (or set {STORAGE_ENV})")
        check_run_options(n_trials=n_trials, timeout_s=timeout_s)  # its seed offset is the parent's, spread
        study = renamed(preflight(file), as_name)
        use_study_cache(url, study.name)  # a worker started by hand; one started by `study run` has it already
        runner = StudyRunner(study, _evaluator(study), storage=url, n_trials=n_trials, timeout_s=timeout_s,
                             live=False, worker_prefix=prefix, seed_offset=seed_offset)
        runner.open()
        try:
            summary = runner.run()
            if summary.interrupted:  # the parent may repeat its SIGINT; this worker is done and only exits now
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            return summary
        finally:
            runner.close()

    if _quiet_interrupt(work).interrupted:
        raise SystemExit(130)


def best_command(file_or_name: str, *, storage: str | None, limit: int, as_json: bool) -> None:
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
    if as_json:
        print(json.dumps(best, indent=1))
        return
    summary = RunSummary(name, redact(url), {}, best)
    metrics = [o.metric for o in objectives]
    print(f"best trials of {name}" + (" (Pareto front)" if len(metrics) > 1 else "") + ":")
    print("\n".join(describe_best(summary, metrics)) or "  no feasible trial completed")


