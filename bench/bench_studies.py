"""Study benchmarks (figures go in bench/RESULTS.md, section "Studies").

1. Screening: candidate specs per second through sampling, validation and the analytic budget check (the
   quickstart's space and A10G constraint), without Optuna. Target: >= 1,000/s.
2. Framework overhead: everything a study does besides training (Optuna ask/tell and sampler, screening, our
   storage writes, the loop), as a share of the whole run's wall time, with real `train()` on the quickstart's
   task and recipe when archsearch.training is importable (else a fixed-work numpy evaluator of similar
   length, reported as such). Target: < 3%.

    .venv/bin/python bench/bench_studies.py [--candidates 5000] [--trials 6] [--storage sqlite:///...]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from importlib import resources


def screening(n: int) -> dict:
    from archsearch.spec import SpecError
    from archsearch.studies import RandomSource, load_study
    from archsearch.studies.screening import Screen

    study = load_study(str(resources.files("archsearch.study_files") / "quickstart.yaml"))
    screen = Screen(study.file.constraints)
    base = study.base.to_dict()
    source = RandomSource(0)
    fits = invalid = 0
    started = time.perf_counter()
    for i in range(n):
        sample = study.space.sample(source)
        try:
            spec = sample.spec(base, f"c{i}")
        except SpecError:
            invalid += 1
            continue
        fits += screen(spec).fits
    elapsed = time.perf_counter() - started
    return {"candidates": n, "seconds": elapsed, "per_s": n / elapsed, "fits": fits, "invalid": invalid}


class FixedWork:
    """Stand-in when training is unavailable: ~`seconds` of numpy matmuls, evaluations like train()'s."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __call__(self, spec, callback, *, out_dir=None):
        import numpy as np

        a = np.random.default_rng(0).standard_normal((256, 256))
        started = time.perf_counter()
        step = 0
        while time.perf_counter() - started < self.seconds:
            for _ in range(20):
                a = np.tanh(a @ a / 256)
            step += 1
            if step % 5 == 0:
                callback(step, {"val_loss": 1.0 / step})
        return {"status": "completed", "metrics": {"val_loss": 1.0 / max(step, 1)}, "curve": []}


def overhead(trials: int, storage: str | None) -> dict:
    from archsearch.storage import Database
    from archsearch.storage import records
    from archsearch.studies import StudyRunner, load_study

    study = load_study(str(resources.files("archsearch.study_files") / "quickstart.yaml"))
    try:
        from archsearch.studies.evaluate import TrainEvaluator

        evaluator = TrainEvaluator(study.file.task, study.file.recipe, seed=0)
        kind = "train() on the quickstart task/recipe"
    except ImportError:
        evaluator = FixedWork(3.0)
        kind = "fixed 3 s numpy work (training unavailable)"
    url = storage or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    runner = StudyRunner(study, evaluator, storage=url, n_trials=trials, timeout_s=None, live=False)
    runner.open()
    started = time.perf_counter()
    runner.run()
    total = time.perf_counter() - started
    with Database(url) as db:
        rows = records.trials_of(db, runner.record.id)
    runner.close()
    trained = [r for r in rows if r.status in ("completed", "stopped", "pruned", "diverged")]
    train_time = sum(r.train_time_s or 0 for r in rows)
    inside = sum(r.overhead_s or 0 for r in trained)
    return {"evaluator": kind, "trials": len(rows), "trained": len(trained), "total_s": total,
            "train_s": train_time, "overhead_share": (total - train_time) / total,
            "per_trained_trial_overhead_s": inside / max(len(trained), 1),
            "mean_trained_trial_s": sum(r.wall_time_s for r in trained) / max(len(trained), 1),
            "storage": url.split("://")[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--storage", default=None)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    s = screening(args.candidates)
    print(f"screening: {s['per_s']:,.0f} candidates/s ({s['candidates']} in {s['seconds']:.2f} s; "
          f"{s['fits']} fit the budget, {s['invalid']} invalid)")
    o = overhead(args.trials, args.storage)
    print(f"overhead ({o['evaluator']}, {o['storage']}): {100 * o['overhead_share']:.2f}% of {o['total_s']:.1f} s "
          f"for {o['trials']} trials ({o['trained']} trained, {o['mean_trained_trial_s']:.2f} s each; "
          f"{o['per_trained_trial_overhead_s'] * 1000:.0f} ms of framework work inside each trained trial)")


if __name__ == "__main__":
    main()
