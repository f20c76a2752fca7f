"""Does a study's GPU time go to training? Runs a real study (`archsearch study run`, a fresh process each run, so
compile caches are only shared through the disk) of the 100M-class trial (bench/specs/trial-d768.yaml as the base,
a small space of its patterns, compiled, the study's default precision auto) and reports, from what the trials
recorded (their "timing" attribute, archsearch.training.loop.Trainer.timing):

- the share of the study's wall time (x GPUs) spent in training steps: each trial's timed steps plus its first
  step counted as one ordinary step (the rest of the first step is compile and autotune);
- the first trial's warm-up (prepare + first step: build, compile, autotune) and the later trials' median;
- trials per GPU-hour; which precision each trial got and why; how many trials reused this process's compile.
- with --stacks SECONDS, what the study process's threads did during the first trial's warm-up (their Python
  stacks sampled by a thread of its own: autotuning, compiling, loading cached code, ...; bench/stack_samples.py),
  and which ptxas its Triton keyed kernels by (bench/ptxas_probe.py);
- every Triton autotune that was not served from disk, per kernel (TRITON_PRINT_AUTOTUNING in the study's log).

`--runs 2` runs the same study twice under new names with one cache folder: the second run shows what a rerun
gets from the persisted caches. `--cold-cache` starts from an empty cache folder (the "before" of issue 15).

    python bench/bench_study_time.py --trials 12 --steps 100 --runs 2 --cold-cache     # on the GPU
    python bench/bench_study_time.py --smoke                                            # CPU: tiny spec, 3 trials
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from archsearch.training.recipe import COMPILE_SCOPES, DEFAULT_COMPILE_SCOPE

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import ptxas_probe  # noqa: E402  (bench/ is not a package)
import stack_samples  # noqa: E402
# Patterns of the 100M class: the trial and variants with the same layer count (12 mixers + 12 MLPs).
PATTERNS_100M = ["M-L-M-*-M-M-L-M-*-M-*-M-", "M-M-L-M-*-M-M-L-M-*-M-*-", "M-L-M-M-*-M-L-M-M-*-M-*-",
                 "M-M-M-L-M-*-M-M-L-M-*-*-"]
SMOKE_BASE = {"name": "smoke-hybrid", "vocab_size": 64, "d_model": 64, "max_context": 4096, "pattern": "M-*-",
              "blocks": {"M": {"kind": "mamba2", "n_heads": 2, "head_dim": 32, "d_state": 16, "chunk_size": 32},
                         "*": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16},
                         "L": {"kind": "attention", "n_heads": 4, "n_kv_heads": 2, "head_dim": 16, "window": 16},
                         "-": {"kind": "mlp", "ffn_ratio": 2}}}


def study_document(name: str, args) -> dict:
    if args.smoke:
        base, patterns = SMOKE_BASE, ["M-*-", "M-L-"]
        task = {"name": "mqar", "options": {"vocab": 64, "n_pairs": 4}}
        recipe = {"steps": args.steps, "batch_size": 4, "seq_len": 32, "eval_every": args.steps, "eval_batches": 1,
                  "compile": args.compile_scope if args.compile else False}
    else:
        base, patterns = yaml.safe_load((REPO / args.base).read_text()), PATTERNS_100M
        task = {"name": "mqar", "options": {"vocab": base["vocab_size"], "n_pairs": 64}}
        recipe = {"steps": args.steps, "batch_size": args.batch, "seq_len": args.seq_len, "eval_every": args.steps,
                  "eval_batches": 2, "compile": False if args.eager else args.compile_scope, "warmup": 0.1}
    # A grid of patterns x init scales: every trial a distinct candidate (a study never retrains a duplicate), and
    # each pattern's shapes trained several times (init.std changes no shape), so in-process reuse shows.
    stds = [round(0.01 + 0.005 * i, 4) for i in range(-(-args.trials // len(patterns)))]
    space = {"pattern": {"choices": patterns}, "parameters": {"init.std": {"type": "categorical", "choices": stds}}}
    return {"name": name, "base": base, "space": space, "task": task, "recipe": recipe,
            "objectives": [{"metric": "val_loss", "direction": "minimize"}], "constraints": {},
            "sampler": {"type": "grid"}, "n_trials": args.trials, "seed": args.seed}


class Stopped(Exception):
    """SIGTERM (e.g. `timeout` around this benchmark on a lent GPU): stop the study, report the trials that
    finished."""


def _stop(signum, frame):
    raise Stopped(signum)


PTXAS_LINE = re.compile(rf"^{re.escape(ptxas_probe.LINE)}.*$", re.M)


def run_study(name: str, folder: Path, args, env: dict[str, str]) -> dict:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study_document(name, args), sort_keys=False))
    url = f"sqlite:///{folder / 'studies.db'}"
    study_args = ["study", "run", str(path), "--storage", url, "--n-trials", str(args.trials), "--workers",
                  str(args.workers)]
    stacks = str(folder / f"{name}.stacks") if args.stacks else None
    command = [sys.executable, "-m", "archsearch.cli", *study_args]
    if stacks:  # the same command, its threads' stacks sampled into NAME.stacks, the ptxas it keyed by at its exit
        sampled = stack_samples.prelude(stacks, args.stacks, "archsearch.cli")
        command = [sys.executable, "-c", ptxas_probe.prelude() + sampled, *study_args]
    log = folder / f"{name}.log"
    began, began_at = time.perf_counter(), time.time()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        with log.open("w") as out:
            # its own session: a SIGTERM to our process group (`timeout`) reaches only us, and we stop it as Ctrl-C
            # would (its workers too): finished trials stay stored, the running ones go back to the queue
            proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)
            try:
                returncode = proc.wait()
            except Stopped:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # `timeout` may send it again
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                print(f"cut short; the study's last output ({log}):\n" + "\n".join(log.read_text().splitlines()[-20:]))
                return {"name": name, "url": url, "wall_s": None, "began_at": began_at, "partial": True,
                        "stacks": stacks, "log": str(log)}
    finally:
        signal.signal(signal.SIGTERM, previous)
    wall = time.perf_counter() - began
    if returncode != 0:
        sys.exit(f"study run failed ({returncode}); its output: {log}\n{log.read_text()[-3000:]}")
    return {"name": name, "url": url, "wall_s": wall, "began_at": began_at, "ended_at": began_at + wall,
            "partial": False, "stacks": stacks, "log": str(log)}


def report(run: dict, gpus: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=run["name"], storage=run["url"])
    trials = sorted((t for t in study.trials if "timing" in t.user_attrs), key=lambda t: t.number)
    if not trials:
        sys.exit(f"study {run['name']}: no trial recorded its timing")
    timings = [t.user_attrs["timing"] for t in trials]
    steps = sum(t["steps_s"] + (t["steps_s"] / t["timed_steps"] if t["timed_steps"] else 0) for t in timings)
    warm = [t["to_first_step_s"] for t in timings if t["to_first_step_s"] is not None]
    log_text = Path(run["log"]).read_text(errors="replace") if run.get("log") else ""  # the study's output
    precision = {}
    for t in trials:
        p = t.user_attrs.get("precision", {})
        precision.setdefault(f"{p.get('name')}: {p.get('reason')}", []).append(t.number)
    # outside any trial: process start, imports and study set-up before the first; summary and exit after the last
    starts = [t.datetime_start.timestamp() for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete.timestamp() for t in study.trials if t.datetime_complete]
    if run["partial"]:  # cut short: the study's wall time up to the end of its last finished trial
        run = {**run, "ended_at": max(ends), "wall_s": max(ends) - run["began_at"]}
    gpu_hours = run["wall_s"] * gpus / 3600
    return {
        "study": run["name"], "partial": run["partial"], "trials": len(trials), "wall_s": round(run["wall_s"], 1),
        "gpus": gpus, "steps_share": steps / (run["wall_s"] * gpus),
        "first_trial_warmup_s": round(warm[0], 1) if warm else None,
        "later_trials_median_warmup_s": round(statistics.median(warm[1:]), 1) if len(warm) > 1 else None,
        "trials_per_gpu_hour": len(trials) / gpu_hours,
        "before_first_trial_s": round(min(starts) - run["began_at"], 1) if starts else None,
        "after_last_trial_s": round(run["ended_at"] - max(ends), 1) if ends else None,
        "first_trial_evaluation_s": round(timings[0].get("eval_s", float("nan")), 1),
        "compile_caches": timings[-1].get("compile_caches"),  # the process's totals (one worker)
        "compile_reused": sum(bool((t.get("compile") or {}).get("seen_before")) for t in timings),
        "dynamo_resets": sum(bool((t.get("compile") or {}).get("dynamo_reset")) for t in timings),
        "precision": {k: v for k, v in precision.items()},
        "first_trial_warmup_stacks": _warmup_stacks(run, trials[0], timings[0]),
        "ptxas_at_exit": PTXAS_LINE.findall(log_text),
        "autotuned_not_from_disk": autotuned(log_text),
        "per_trial": [{"number": tr.number, **{k: (round(v, 2) if isinstance(v, float) else v)
                                               for k, v in t.items() if k != "compile"}}
                      for tr, t in zip(trials, timings)],
    }


AUTOTUNED = re.compile(r"Triton autotuning for function (?P<name>\S+?),\s*with key as .*?,\s*"
                       r"finished after (?P<seconds>[\d.]+)s", re.S)


def autotuned(log_text: str) -> dict[str, list[float]]:
    """Triton's TRITON_PRINT_AUTOTUNING lines in a study's log: kernel -> [times benchmarked, seconds]."""
    found: dict[str, list[float]] = {}
    for m in AUTOTUNED.finditer(log_text):
        entry = found.setdefault(m["name"], [0, 0.0])
        entry[0] += 1
        entry[1] = round(entry[1] + float(m["seconds"]), 2)
    return dict(sorted(found.items(), key=lambda item: -item[1][1]))


def _warmup_stacks(run: dict, first, timing: dict) -> list[str] | None:
    """What the study's threads did during the first trial's warm-up, from their sampled stacks (--stacks)."""
    samples = run.get("stacks")
    if not samples or not Path(samples).exists() or timing.get("to_first_step_s") is None:
        return None
    start = first.datetime_start.timestamp()
    return stack_samples.summarize(samples, (start, start + timing["to_first_step_s"]))


def print_report(r: dict) -> None:
    cut = " (cut short: up to the end of the last finished trial)" if r["partial"] else ""
    print(f"\n{r['study']}: {r['trials']} trials in {r['wall_s']} s{cut} on {r['gpus']} GPU(s) (the CPU in --smoke)")
    print(f"  share of wall time in training steps: {r['steps_share']:.1%}")
    print(f"  first trial's warm-up (prepare + first step): {r['first_trial_warmup_s']} s; later trials' median: "
          f"{r['later_trials_median_warmup_s']} s")
    print(f"  trials per GPU-hour: {r['trials_per_gpu_hour']:.1f}")
    print(f"  outside the trials: {r['before_first_trial_s']} s before the first, {r['after_last_trial_s']} s after "
          f"the last; the first trial's evaluation: {r['first_trial_evaluation_s']} s")
    print(f"  compile caches (the process's totals at the last trial): {r['compile_caches']}")
    print(f"  compiled code reused in-process: {r['compile_reused']} trials; dynamo resets: {r['dynamo_resets']}")
    for decision, numbers in r["precision"].items():
        print(f"  precision {decision}  <- trials {numbers}")
    tuned = r.get("autotuned_not_from_disk") or {}
    print(f"  Triton autotuning not served from disk: {sum(n for n, _ in tuned.values())} times, "
          f"{sum(t for _, t in tuned.values()):.1f} s" + "".join(f"\n    {n:3d}x {t:7.2f} s  {name}"
                                                            for name, (n, t) in list(tuned.items())[:12]))
    for line in r.get("ptxas_at_exit") or []:
        print(f"  {line}")
    if r.get("first_trial_warmup_stacks"):
        print("  the first trial's warm-up, by sampled stacks of the study process:")
        print("\n".join("    " + line for line in r["first_trial_warmup_stacks"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="bench/specs/trial-d768.yaml", help="base spec (relative to the repo)")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--workers", default="1", help="study run --workers (a count or auto)")
    parser.add_argument("--runs", type=int, default=1, help="run the study this many times (fresh processes)")
    parser.add_argument("--cold-cache", action="store_true", help="start from an empty compile cache folder")
    parser.add_argument("--eager", action="store_true", help="recipe compile: false")
    parser.add_argument("--compile-scope", default=DEFAULT_COMPILE_SCOPE, choices=COMPILE_SCOPES,
                        help="recipe compile: the whole model as one program, or each layer on its own")
    parser.add_argument("--smoke", action="store_true", help="CPU smoke test: a tiny spec, few steps (eager)")
    parser.add_argument("--compile", action="store_true",
                        help="--smoke: compile too (inductor on CPU: slow), in --compile-scope")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", default=None, help="folder for the database and caches (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the reports here")
    parser.add_argument("--stacks", type=float, default=0, metavar="SECONDS",
                        help="sample the study process's Python stacks every SECONDS and report what its first "
                             "trial's warm-up did (bench/stack_samples.py), and the ptxas its Triton keyed by; 0: off")
    args = parser.parse_args()
    if args.smoke:
        args.trials, args.steps = min(args.trials, 3), min(args.steps, 3)
    for flag in ("trials", "steps", "batch", "seq_len", "runs"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be >= 1")
    if args.stacks < 0:
        parser.error(f"--stacks {args.stacks}: must be >= 0 (0: off)")
    if args.stacks and args.workers != "1":  # trials then run in worker processes: only the idle parent is sampled
        parser.error(f"--stacks samples the study's own process: use it with --workers 1, not {args.workers!r}")
    folder = Path(args.keep or tempfile.mkdtemp(prefix="bench-study-time-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "studies.compile-cache"  # the study's own default beside studies.db
    if args.cold_cache and cache.exists():
        shutil.rmtree(cache)
    # what the study sets for itself (compile_cache.py) is left to it, so that its own code is what is measured
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR",
                                                             "TRITON_PTXAS_PATH")}
    env["TRITON_PRINT_AUTOTUNING"] = "1"  # every autotune not served from disk, into the study's log (reported)
    env.pop("ARCHSEARCH_COMPILE_CACHE", None)
    if args.smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
    gpus = 1
    if not args.smoke:
        import torch

        gpus = max(1, torch.cuda.device_count()) if args.workers == "auto" else 1
    stamp = time.strftime("%H%M%S")
    reports = []
    for i in range(args.runs):
        run = run_study(f"time-{stamp}-{i}", folder, args, env)
        reports.append(report(run, gpus))
        print_report(reports[-1])
        sys.stdout.flush()
        if args.json:  # after each run: a later one cut short keeps this one
            Path(args.json).write_text(json.dumps(reports, indent=1))
        if run["partial"]:
            break
    print(f"\ncache folder: {cache} ({sum(f.stat().st_size for f in cache.rglob('*') if f.is_file()) / 1e6:.1f} MB)"
          if cache.exists() else "\ncache folder: (none written)")


if __name__ == "__main__":
    main()
