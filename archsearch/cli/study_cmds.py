"""`archsearch study run|best|list|fidelity`, `archsearch results export`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ..limits import MAX_SEED_OFFSET, MAX_TIMEOUT_S, MAX_TRIALS, MAX_WORKERS

study_app = typer.Typer(no_args_is_help=True, help="Run Optuna studies from study files and read their results.")
results_app = typer.Typer(no_args_is_help=True, help="Export stored trials.")

STORAGE_HELP = "database URL: sqlite:///FILE or postgresql://USER@HOST/DB (default: the study file's `storage:`)"


def _load(file: str):
    from ..studies import load_study

    return load_study(file)


@study_app.command("run")
def run(file: str = typer.Argument(..., help="study file (YAML)"),
        storage: Optional[str] = typer.Option(None, help=STORAGE_HELP),
        n_trials: Optional[int] = typer.Option(None, "--n-trials", help=f"trials the study aims at in total, "
                                               f"1 .. {MAX_TRIALS:,}; a trial and its retries count once "
                                               "(default: the study file's n_trials)"),
        timeout: Optional[float] = typer.Option(None, help=f"stop starting trials after this many seconds, "
                                                f"> 0 and <= {MAX_TIMEOUT_S:,} (default: the file's timeout_s)"),
        workers: str = typer.Option("1", help=f"worker processes sharing the study, 1 .. {MAX_WORKERS} (PostgreSQL "
                                    "recommended), or auto: one per gpus_per_trial visible GPUs (one CPU worker "
                                    "without GPUs)"),
        progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                                help="live panel (default: when on a terminal)"),
        seed_offset: int = typer.Option(0, "--seed-offset", help=f"0 .. {MAX_SEED_OFFSET:,}: shifts the sampler "
                                        "seed; give each machine sharing a study its own"),
        as_name: Optional[str] = typer.Option(None, "--as", help="run the file as a new study of this name (a "
                                              "stored study asking another question is otherwise refused)")) -> None:
    """Run (or resume) the study of FILE: every trial is screened, trained and stored.

    The whole file is checked before the first trial (every problem at once, exit 2). Ctrl-C stops after
    recording the running trial as interrupted and queuing it again (exit 130); the same command resumes.
    A stored study of the same name whose base, target, space, task, recipe, objectives or constraints differ
    from the file's is refused (exit 2, naming each change); `--as NEW_NAME` runs the file as a new study.
    """
    from ..studies.launch import run_study

    def note(text: str) -> None:
        print(text, file=sys.stderr)

    outcome = _quiet_interrupt(lambda: run_study(file, storage=storage, n_trials=n_trials, timeout_s=timeout,
                                                 workers=workers, live=progress, seed_offset=seed_offset,
                                                 as_name=as_name, note=note))
    _print_summary(outcome.summary, outcome.objectives, outcome.url)
    summary = outcome.summary
    if summary.interrupted:
        if outcome.workers:
            of = f" of {summary.target}" if summary.target is not None else ""
            print(f"interrupted (Ctrl-C): {summary.done}{of} trials stored, each worker's running trial queued "
                  "again; run the same command to resume", file=sys.stderr)
        raise SystemExit(130)


@study_app.command("worker", hidden=True)
def worker(file: str, storage: Optional[str] = typer.Option(None, help="default: $ARCHSEARCH_WORKER_STORAGE"),
           n_trials: Optional[int] = typer.Option(None, "--n-trials"),
           timeout: Optional[float] = typer.Option(None), prefix: str = typer.Option(""),
           seed_offset: int = typer.Option(0, "--seed-offset"),
           as_name: Optional[str] = typer.Option(None, "--as")) -> None:
    """One worker process of `study run --workers K` (plain output); the parent passes the storage URL through
    the environment so that its password never shows on a command line."""
    from ..studies.launch import run_worker, spawned_worker

    # a worker of `study run --workers N` stays quiet on Ctrl-C, also while it starts: its parent says it once
    summary = _quiet_interrupt(lambda: run_worker(file, storage=storage, n_trials=n_trials, timeout_s=timeout,
                                                  prefix=prefix, seed_offset=seed_offset, as_name=as_name),
                               announce=not spawned_worker())
    if summary.interrupted:
        raise SystemExit(130)


@study_app.command("best")
def best(file_or_name: str = typer.Argument(..., help="study file, or a stored study's name with --storage"),
         storage: Optional[str] = typer.Option(None, help=STORAGE_HELP),
         limit: int = typer.Option(5, min=1), as_json: bool = typer.Option(False, "--json")) -> None:
    """The best feasible trials of a stored study (the Pareto front when it has several objectives)."""
    from ..studies.fronts import describe_best
    from ..studies.launch import best_of

    found = best_of(file_or_name, storage=storage, limit=limit)
    if as_json:
        print(json.dumps(found.best, indent=1))
        return
    print(f"best trials of {found.name}" + (" (Pareto front)" if len(found.metrics) > 1 else "") + ":")
    print("\n".join(describe_best(found.summary(), found.metrics)) or "  no feasible trial completed")


@study_app.command("fidelity")
def fidelity(file: str = typer.Argument(..., help="study file (YAML) of a stored study"),
             storage: Optional[str] = typer.Option(None, help=STORAGE_HELP),
             factor: float = typer.Option(4.0, help="the long runs' length over the study's recipe, > 1"),
             front: bool = typer.Option(True, "--front/--no-front", help="retrain the Pareto front (best trial)"),
             random_k: int = typer.Option(0, "--random", help="also retrain K random other completed candidates"),
             seeds: int = typer.Option(2, help="2: one candidate again at the study's length with a second seed "
                                       "(the noise floor); 1: none"),
             timeout: Optional[float] = typer.Option(None, help=f"start no retraining that would not end within "
                                                     f"this many seconds of the start (judged by the longest stored "
                                                     f"one), > 0 and <= {MAX_TIMEOUT_S:,}; the statistics then "
                                                     "cover the candidates finished, marked partial"),
             as_json: bool = typer.Option(False, "--json")) -> None:
    """How far the study's short trials can be trusted: chosen candidates retrained at FACTOR x the budget,
    Kendall tau and pairwise decision accuracy (bootstrap 95% intervals) per trained objective; stored beside the
    study.

    Each retraining is stored as it finishes: Ctrl-C keeps the finished ones (exit 130), and the same command
    reuses them and trains only the rest. With --timeout, a measurement cut short is stored as partial (n of m
    candidates); with fewer than 2 candidates retrained it stores the runs only (exit 0, rerun to continue).
    """
    from ..studies.fidelity import measure_fidelity

    report = _quiet_interrupt(lambda: measure_fidelity(_load(file), storage=storage, factor=factor, front=front,
                                                       random_k=random_k, seeds=seeds, timeout_s=timeout,
                                                       note=lambda text: print(text, file=sys.stderr)))
    if as_json:
        print(json.dumps(report.to_dict(), indent=1))
    if report.interrupted or not report.measured or (as_json and report.partial):
        print("\n".join(report.lines()[:1]), file=sys.stderr)  # what happened, and that a rerun continues
    elif not as_json:
        print("\n".join(report.lines()))
    if report.interrupted:
        raise SystemExit(130)


def _print_summary(summary, objectives: list[str], url: str) -> None:
    from ..storage import redact
    from ..studies.fronts import describe_best

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


def _quiet_interrupt(run, announce: bool = True):
    """Run `run()`; a Ctrl-C outside a trial (while loading, opening storage, starting workers) ends the command
    with one line (none when not `announce`) and exit status 130 instead of a traceback."""
    default_hook = sys.unraisablehook

    def hook(unraisable):  # a Ctrl-C landing in a finalizer is dropped by Python; do not print its traceback
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default_hook(unraisable)

    sys.unraisablehook = hook  # the parent of workers repeats its SIGINT, so a dropped one is not lost
    try:
        return run()
    except KeyboardInterrupt:
        if announce:
            print("\ninterrupted (Ctrl-C) outside a trial: finished trials are stored; run the same command to "
                  "resume", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        sys.unraisablehook = default_hook


@study_app.command("list")
def list_(storage: str = typer.Option("sqlite:///archsearch.db", help="database URL"),
          as_json: bool = typer.Option(False, "--json")) -> None:
    """Every study stored in a database, with its trial counts."""
    from ..storage import Database
    from ..storage.records import list_studies
    from .spec_cmds import printable

    from ..storage.records import study_by_name
    from ..storage.tally import study_tally

    with Database(storage, create=False, label="--storage") as db:
        studies = list_studies(db)
        for s in studies:  # a trial and its retries count once, as n_trials counts them
            tally = study_tally(db, study_by_name(db, s["name"]).id)
            s["counts"], s["done"], s["attempts"] = tally.by_status, tally.done, tally.attempts
    if as_json:
        print(json.dumps(studies, indent=1))
        return
    if not studies:
        print("no studies stored")
    for s in studies:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(s["counts"].items())) or "no trials"
        of = f" of {s['n_trials_target']}" if s["n_trials_target"] is not None else ""
        counts = f"{s['done']}{of} trials: {counts}"
        objectives = ", ".join(f"{o['metric']} ({o['direction'][:3]})" for o in s["objectives"])
        print(printable(f"{s['name']:<32} {objectives:<40} {counts}  (created {s['created_at']})"))


@results_app.command("export")
def export(storage: str = typer.Option("sqlite:///archsearch.db", help="database URL"),
           fmt: str = typer.Option("csv", "--format", help="csv, json or parquet"),
           output: Optional[Path] = typer.Option(None, "-o", "--output", help="file to write (default: stdout, for "
                                                 "csv/json)"),
           study: Optional[str] = typer.Option(None, help="only this study")) -> None:
    """Every stored trial, one row each."""
    from ..storage import Database
    from ..storage.export import export as do_export
    from .spec_cmds import printable

    with Database(storage, create=False, label="--storage") as db:
        text = do_export(db, fmt, output, study)
    if text is not None:
        print(printable(text, keep="\n\r\t") if fmt == "csv" else text, end="")
    else:
        typer.echo(printable(f"wrote {output}"), err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
    app.add_typer(results_app, name="results")
