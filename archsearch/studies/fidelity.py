"""Proxy fidelity, measured: retrain chosen completed candidates of a study at `factor` x the recipe's length and
compare the short ranking (the study's stored values) with the long one, per trained objective (archsearch.studies
.fidelity_stats: Kendall tau-b and pairwise decision accuracy with bootstrap 95% intervals). One candidate is also
retrained at the short length with a second seed: the difference is the noise floor a ranking cannot beat.

Chosen: the Pareto front (`front`), plus `random` other distinct completed candidates drawn with the study's seed.
The measurement is stored in archsearch_fidelity (the dashboard reads it) and returned.

Retraining is the long part (hours on a GPU), so each run is stored in archsearch_fidelity_runs as soon as it
finishes, keyed by what it trained (candidate, task, recipe, seed): Ctrl-C, a crash or a time limit loses at most
the run in progress, and the same command reuses the stored runs. As in the study runner
(archsearch.studies.interrupts), training is left open to Ctrl-C and only the write of a finished run holds it.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..spec import parse_spec
from ..storage import Database, records
from ..storage import rungs as rung_rows
from ..storage.pareto import pareto_front
from ..limits import MAX_TIMEOUT_S
from .dedup import candidate_key
from .fidelity_stats import agreement
from .fronts import _distinct
from .identity import canonical_task
from .interrupts import InterruptGuard
from .objectives import ANALYTIC
from .study_file import Study

MAX_FACTOR = 1000.0
_clock = time.monotonic  # the time limit's clock (tests replace it)


@dataclass
class FidelityReport:
    study: str
    factor: float
    candidates: list[dict[str, Any]]  # those retrained (all chosen unless a time limit or Ctrl-C came first)
    noise: dict[str, Any] | None
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_chosen: int | None = None
    stopped_by: str | None = None  # "time limit": not every chosen run fitted
    partial: bool = False  # statistics over fewer than the chosen candidates (or without the noise floor)
    interrupted: bool = False  # Ctrl-C: finished runs are stored, nothing is measured
    measured: bool = False  # statistics computed and stored
    stored_runs: int = 0  # retrainings of this measurement stored (earlier calls' included)
    planned_runs: int = 0

    def lines(self) -> list[str]:
        if self.interrupted:
            return [f"interrupted (Ctrl-C): {self.stored_runs} of {self.planned_runs} retrainings stored; run the "
                    "same command to continue (stored runs are reused)"]
        n, m = len(self.candidates), self.n_chosen or len(self.candidates)
        if not self.measured:
            return [f"time limit: {self.stored_runs} of {self.planned_runs} retrainings stored, {n} of {m} "
                    "candidates retrained; a ranking needs >= 2: run the same command to continue (stored runs are "
                    "reused)"]
        out = [f"proxy fidelity of {self.study}: {n} candidates retrained at {self.factor:g}x the budget"]
        if self.partial:
            noise = "" if n < m else " (the noise floor did not fit)"
            out[0] += (f" -- partial: {n} of {m} candidates{noise}, the time limit came first; run the same command "
                       "to continue")
        for metric, s in self.stats.items():
            tau = "n/a" if s["tau"] is None else f"{s['tau']:.3f}"
            acc = "n/a" if s["pairwise_accuracy"] is None else f"{s['pairwise_accuracy']:.3f}"
            out.append(f"  {metric:<14} Kendall tau {tau} {_ci(s['tau_ci95'])}   pairwise accuracy {acc} "
                       f"{_ci(s['pairwise_accuracy_ci95'])}   (n={s['n']})")
        if self.noise:
            diffs = ", ".join(f"{m} {d:.4g}" for m, d in self.noise["abs_diff"].items())
            out.append(f"  noise floor (trial #{self.noise['number']}, seeds {self.noise['seeds']}): |difference| "
                       f"{diffs}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "factor": self.factor, "stats": self.stats, "noise": self.noise,
                "candidates": self.candidates, "n_chosen": self.n_chosen, "partial": self.partial,
                "measured": self.measured, "interrupted": self.interrupted, "stored_runs": self.stored_runs,
                "planned_runs": self.planned_runs}


def _ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "[n/a]"


def scaled_recipe(recipe: dict[str, Any], factor: float) -> dict[str, Any]:
    """`recipe` with its length (steps, tokens or FLOPs) times `factor`; warmup and eval_every given in steps scale
    with it (fractions already do), so the long run's schedule has the short one's shape."""
    out = dict(recipe)
    if out.get("tokens") is not None:
        from ..training.budget import parse_tokens

        out["tokens"] = int(parse_tokens(out["tokens"], "recipe.tokens") * factor)
    elif out.get("flops") is not None:
        from ..training.budget import parse_flops

        out["flops"] = parse_flops(out["flops"], "recipe.flops") * factor
    else:
        from ..training.recipe import DEFAULT_STEPS

        out["steps"] = max(1, round((out.get("steps") or DEFAULT_STEPS) * factor))
        for key in ("warmup", "eval_every"):
            if isinstance(out.get(key), int) and not isinstance(out.get(key), bool) and out[key] >= 1:
                out[key] = max(1, round(out[key] * factor))
    return out


def check_options(factor: float, front: bool, random_k: int, seeds: int, timeout_s: float | None = None) -> None:
    if not (math.isfinite(factor) and 1 < factor <= MAX_FACTOR):
        raise UserError(f"--factor {factor:g}: the long runs' length over the study's; allowed: > 1 and <= "
                        f"{MAX_FACTOR:g}")
    if random_k < 0 or random_k > 10_000:
        raise UserError(f"--random {random_k}: extra random candidates; allowed: 0 .. 10000")
    if seeds not in (1, 2):
        raise UserError(f"--seeds {seeds}: 1 (no noise floor) or 2 (one candidate again with a second seed)")
    if not front and random_k == 0:
        raise UserError("choose candidates: --front, --random K, or both")
    if timeout_s is not None and not (math.isfinite(timeout_s) and 0 < timeout_s <= MAX_TIMEOUT_S):
        raise UserError(f"--timeout {timeout_s:g}: seconds before no more retraining starts; allowed: > 0 and <= "
                        f"{MAX_TIMEOUT_S:,}")


def choose(rows, objectives, *, front: bool, random_k: int, seed: int) -> list[tuple[Any, str]]:
    """(row, why chosen) for the front and `random_k` random others among distinct completed candidates."""
    distinct = [r for r, _ in _distinct(rows) if r.objectives]
    chosen: list[tuple[Any, str]] = []
    if front:
        on_front = pareto_front([r.objectives for r in distinct], [o.direction for o in objectives])
        chosen = [(distinct[i], "front") for i in sorted(on_front)]
    taken = {r.number for r, _ in chosen}
    rest = [r for r in distinct if r.number not in taken]
    picks = random.Random(seed).sample(rest, min(random_k, len(rest)))
    return _alternate(chosen, [(r, "random") for r in sorted(picks, key=lambda r: r.number)])


def _alternate(first: list, second: list) -> list:
    """first[0], second[0], first[1], ... then the longer list's rest: runs go in this order, so a time limit that
    stops them early leaves a sample of both kinds, not the front alone (whose short ranking is the easy part)."""
    out = []
    for i in range(max(len(first), len(second))):
        out += first[i:i + 1] + second[i:i + 1]
    return out


def trial_seed(file) -> int:
    """The seed the study's trials trained with, by the rule that gave it to them (a recipe's own `seed` wins)."""
    from .evaluate import resolve_training

    return resolve_training(file.task, file.recipe, file.seed)[1].seed


def measure_fidelity(study: Study, *, storage: str | None = None, factor: float = 4.0, front: bool = True,
                     random_k: int = 0, seeds: int = 2, timeout_s: float | None = None,
                     evaluator_for: Callable[[dict, int], Any] | None = None,
                     note: Callable[[str], None] = lambda text: None, resamples: int = 2000) -> FidelityReport:
    """Retrain, compare, store. `evaluator_for(recipe, seed)` makes the evaluator of one length and seed
    (default: archsearch.studies.evaluate.TrainEvaluator on the study's task and device).

    Each retraining is stored as it finishes and reused by a later call (the same candidate, length and seed), so
    Ctrl-C loses only the run in progress: the report then says `interrupted`, and nothing is measured. With
    `timeout_s`, a run is not started unless the longest stored one (scaled to its length) would still finish in
    time; the statistics then cover the candidates finished so far, marked partial."""
    started = _clock()
    check_options(factor, front, random_k, seeds, timeout_s)
    file = study.file
    objectives = list(file.objectives)
    metrics = [o.metric for o in objectives]
    trained = [m for m in metrics if m not in ANALYTIC]
    if not trained:
        raise UserError(f"objectives {metrics} are all known before training: a longer run cannot rank them "
                        "differently, so there is no fidelity to measure")
    if evaluator_for is None:
        from .evaluate import TrainEvaluator

        def evaluator_for(recipe: dict, seed: int):
            return TrainEvaluator(file.task, recipe, seed=seed, device=file.device, recall="recall" in metrics)

    url = storage or file.storage
    with Database(url) as db:
        record = records.study_by_name(db, study.name)
        if record is None:
            raise UserError(f"no stored study {study.name!r} in that storage; run `archsearch study run` first")
        _check_probe(record, study)
        chosen = choose(records.completed_summaries(db, record.id), objectives, front=front, random_k=random_k,
                        seed=file.seed)
        if len(chosen) < 2:
            raise UserError(f"study {study.name!r} has {len(chosen)} chosen completed candidate(s); a ranking needs "
                            ">= 2: add --random K or run more trials")
        full = {r.number: r for r in records.trials_of(db, record.id, ("completed",))}
        retrain = _Retrainer(db, record.id, file, objectives, evaluator_for)
        seed = trial_seed(file)
        long_runs = [retrain.plan(full[row.number], factor, seed) for row, _ in chosen]
        noise_run = retrain.plan(full[chosen[0][0].number], 1.0, seed + 1) if seeds == 2 else None
        runs = long_runs + ([noise_run] if noise_run else [])
        reused = sum(run.key in retrain.stored for run in runs)
        if reused:
            note(f"{reused} of {len(runs)} retrainings stored by an earlier call: reused")
        report = FidelityReport(study.name, factor, [], None, n_chosen=len(chosen))
        try:
            for index, (run, (row, why)) in enumerate(zip(long_runs, chosen)):
                if run.key not in retrain.stored:
                    if not retrain.fits(run, timeout_s, _clock() - started):
                        report.stopped_by = "time limit"
                        estimate = retrain.estimate_s(run)
                        each = f"{estimate:.0f} s a run, " if estimate is not None else ""
                        note(f"time limit: no more long runs start ({index} of {len(chosen)} candidates retrained; "
                             f"{each}{max(0.0, timeout_s - (_clock() - started)):.0f} s left)")
                        break
                    note(f"[{index + 1}/{len(chosen)}] trial #{row.number} {row.pattern_compact} at {factor:g}x "
                         f"({why})")
                    retrain.train(run)
                report.candidates.append({"number": row.number, "chosen_by": why, "pattern": row.pattern_compact,
                                          "short": list(row.objectives), "long": retrain.values(run)})
            if noise_run is not None and (noise_run.key in retrain.stored
                                          or retrain.fits(noise_run, timeout_s, _clock() - started)):
                if noise_run.key not in retrain.stored:
                    note(f"noise floor: trial #{noise_run.row.number} again with seed {noise_run.seed}")
                    retrain.train(noise_run)
                first, again = noise_run.row.objectives, retrain.values(noise_run)
                report.noise = {"number": noise_run.row.number, "seeds": [seed, noise_run.seed],
                                "values": [first, again],
                                "abs_diff": {m: abs(a - b) for m, a, b in zip(metrics, first, again)
                                             if m in trained and a is not None and b is not None}}
            elif noise_run is not None:
                report.stopped_by = "time limit"
                note("time limit: the noise-floor run does not start")
        except KeyboardInterrupt:
            with retrain.guard.holding(deliver=False):  # a second Ctrl-C must not cut the count short
                report.interrupted = True
                report.stored_runs = len(rung_rows.fidelity_runs(db, record.id, [r.key for r in runs]))
                report.planned_runs = len(runs)
            return report
        report.stored_runs, report.planned_runs = sum(r.key in retrain.stored for r in runs), len(runs)
        report.partial = report.stopped_by is not None
        if report.partial and len(report.candidates) < 2:  # too few for a ranking: the runs are kept for a rerun
            return report
        for m in trained:
            i = metrics.index(m)
            pairs = [(c["short"][i], c["long"][i]) for c in report.candidates if c["long"][i] is not None]
            report.stats[m] = agreement([s for s, _ in pairs], [lv for _, lv in pairs], resamples=resamples,
                                        seed=file.seed).to_dict()
        rung_rows.add_fidelity(db, record.id, factor=factor, candidates=report.candidates, noise=report.noise,
                               stats=report.stats, partial=report.partial, n_chosen=len(chosen))
        report.measured = True
    return report


def _check_probe(record, study: Study) -> None:
    """A study whose recall was scored with another probe than today's (a text study stored before 2026-12-06)
    cannot be ranked against retrainings scored with today's: refused, not measured across two scales."""
    from .identity import study_identity

    wanted = study_identity(study)["parts"]["task"].get("recall_probe")
    stored = ((record.identity or {}).get("parts") or {}).get("task", {}).get("recall_probe")
    if wanted is not None and record.identity is not None and stored != wanted:
        raise UserError(f"study {study.name!r} scored recall with probe version {stored or 1}, and retrainings now "
                        f"score it with version {wanted} (a text corpus's frequent ids): the two would not compare; "
                        "run the study again under another name (`study run --as NEW_NAME`) and measure that")


@dataclass(frozen=True)
class _Run:
    """One retraining: `row`'s candidate at `factor` x the study's length with `seed`; `key` names it in storage."""
    row: Any  # archsearch.storage.models.TrialRecord
    factor: float
    seed: int
    recipe: dict[str, Any]
    key: str


class _Retrainer:
    """Trains the planned runs of one measurement and stores each as soon as it finishes."""

    def __init__(self, db: Database, study_id: int, file, objectives, evaluator_for) -> None:
        self.db, self.study_id, self.file, self.objectives = db, study_id, file, objectives
        self._evaluator_for = evaluator_for
        self._evaluators: dict[str, Any] = {}
        self.guard = InterruptGuard()
        self.stored = rung_rows.fidelity_runs(db, study_id)  # every stored run of the study: time estimates too

    def plan(self, row, factor: float, seed: int) -> _Run:
        recipe = scaled_recipe(self.file.recipe, factor) if factor != 1.0 else dict(self.file.recipe)
        if "seed" in recipe:  # a recipe's own seed wins over the evaluator's: the run's seed must be the recipe's
            recipe["seed"] = seed
        training = {"task": canonical_task(self.file.task), "recipe": recipe, "seed": seed}
        # the trial's own candidate key carries its target: analytic objectives judge the target, so two trials
        # with one proxy and different targets are different runs
        training["candidate"] = row.candidate_key
        return _Run(row, factor, seed, recipe, candidate_key(parse_spec(row.spec), None, training))

    def fits(self, run: _Run, timeout_s: float | None, elapsed_s: float) -> bool:
        """Whether `run` may start: no limit, or the longest stored run, scaled to this one's length, would end
        within it. With nothing stored yet the first run starts (the only way to learn how long one takes)."""
        if timeout_s is None:
            return True
        if elapsed_s >= timeout_s:
            return False
        estimate = self.estimate_s(run)
        return estimate is None or elapsed_s + estimate <= timeout_s

    def estimate_s(self, run: _Run) -> float | None:
        """Seconds `run` should take: the longest stored run of the study, scaled to its length (the longest, so
        that a larger candidate still ends in time; a time limit is a hard stop more often than not)."""
        estimates = [r.wall_time_s * run.factor / r.factor for r in self.stored.values() if r.factor > 0]
        return max(estimates) if estimates else None

    def train(self, run: _Run) -> None:
        key = json.dumps([run.recipe, run.seed], sort_keys=True)
        if key not in self._evaluators:
            self._evaluators[key] = self._evaluator_for(run.recipe, run.seed)
        analytic = {o.metric: v for o, v in zip(self.objectives, run.row.objectives) if o.metric in ANALYTIC}
        result, stored = None, None
        began = _clock()
        try:
            result = self._evaluators[key](parse_spec(run.row.spec), lambda step, metrics: None)
            wall = _clock() - began
            with self.guard.holding():  # storing the finished run is not cut in half by Ctrl-C
                stored = self._store(run, result, analytic, wall)
        except KeyboardInterrupt:
            # Ctrl-C right after the training returned: the run is finished, so it is stored before leaving.
            if result is not None and stored is None:
                with self.guard.holding(deliver=False):
                    self._store(run, result, analytic, _clock() - began)
            raise

    def _store(self, run: _Run, result: dict[str, Any], analytic: dict[str, Any], wall_s: float):
        status = result.get("status")
        values = ([o.value_from(result, analytic) for o in self.objectives] if status == "completed"
                  else [analytic.get(o.metric) for o in self.objectives])  # a diverged run ranks nothing
        stored = rung_rows.store_fidelity_run(
            self.db, self.study_id, run_key=run.key, trial_number=run.row.number, factor=run.factor, seed=run.seed,
            recipe=run.recipe, status=status, objectives=values, metrics=result.get("metrics"), wall_time_s=wall_s)
        self.stored[run.key] = stored
        return stored

    def values(self, run: _Run) -> list[float | None]:
        return list(self.stored[run.key].objectives)
