"""Proxy fidelity, measured: retrain chosen completed candidates of a study at `factor` x the recipe's length and
compare the short ranking (the study's stored values) with the long one, per trained objective (archsearch.studies
.fidelity_stats: Kendall tau-b and pairwise decision accuracy with bootstrap 95% intervals). One candidate is also
retrained at the short length with a second seed: the difference is the noise floor a ranking cannot beat.

Chosen: the Pareto front (`front`), plus `random` other distinct completed candidates drawn with the study's seed.
The measurement is stored in archsearch_fidelity (the dashboard reads it) and returned.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError
from ..spec import parse_spec
from ..storage import Database, records
from ..storage import rungs as rung_rows
from ..storage.pareto import pareto_front
from .fidelity_stats import agreement
from .fronts import _distinct
from .objectives import ANALYTIC
from .study_file import Study

MAX_FACTOR = 1000.0


@dataclass
class FidelityReport:
    study: str
    factor: float
    candidates: list[dict[str, Any]]
    noise: dict[str, Any] | None
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"proxy fidelity of {self.study}: {len(self.candidates)} candidates retrained at {self.factor:g}x "
               "the budget"]
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


def check_options(factor: float, front: bool, random_k: int, seeds: int) -> None:
    if not (math.isfinite(factor) and 1 < factor <= MAX_FACTOR):
        raise UserError(f"--factor {factor:g}: the long runs' length over the study's; allowed: > 1 and <= "
                        f"{MAX_FACTOR:g}")
    if random_k < 0 or random_k > 10_000:
        raise UserError(f"--random {random_k}: extra random candidates; allowed: 0 .. 10000")
    if seeds not in (1, 2):
        raise UserError(f"--seeds {seeds}: 1 (no noise floor) or 2 (one candidate again with a second seed)")
    if not front and random_k == 0:
        raise UserError("choose candidates: --front, --random K, or both")


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
    chosen += [(r, "random") for r in sorted(picks, key=lambda r: r.number)]
    return chosen


def measure_fidelity(study: Study, *, storage: str | None = None, factor: float = 4.0, front: bool = True,
                     random_k: int = 0, seeds: int = 2, evaluator_for: Callable[[dict, int], Any] | None = None,
                     note: Callable[[str], None] = lambda text: None, resamples: int = 2000) -> FidelityReport:
    """Retrain, compare, store. `evaluator_for(recipe, seed)` makes the evaluator of one length and seed
    (default: archsearch.studies.evaluate.TrainEvaluator on the study's task and device)."""
    check_options(factor, front, random_k, seeds)
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
        chosen = choose(records.completed_summaries(db, record.id), objectives, front=front, random_k=random_k,
                        seed=file.seed)
        if len(chosen) < 2:
            raise UserError(f"study {study.name!r} has {len(chosen)} chosen completed candidate(s); a ranking needs "
                            ">= 2: add --random K or run more trials")
        full = {r.number: r for r in records.trials_of(db, record.id, ("completed",))}
        long_eval = evaluator_for(scaled_recipe(file.recipe, factor), file.seed)
        candidates = []
        for index, (row, why) in enumerate(chosen):
            note(f"[{index + 1}/{len(chosen)}] trial #{row.number} {row.pattern_compact} at {factor:g}x ({why})")
            values = _train(long_eval, full[row.number], objectives)
            candidates.append({"number": row.number, "chosen_by": why, "pattern": row.pattern_compact,
                               "short": list(row.objectives), "long": values})
        noise = None
        if seeds == 2:
            first = full[chosen[0][0].number]
            note(f"noise floor: trial #{first.number} again with seed {file.seed + 1}")
            again = _train(evaluator_for(dict(file.recipe), file.seed + 1), first, objectives)
            noise = {"number": first.number, "seeds": [file.seed, file.seed + 1], "values": [first.objectives, again],
                     "abs_diff": {m: abs(a - b) for m, a, b in zip(metrics, first.objectives, again)
                                  if m in trained}}
        stats = {}
        for m in trained:
            i = metrics.index(m)
            pairs = [(c["short"][i], c["long"][i]) for c in candidates if c["long"][i] is not None]
            stats[m] = agreement([s for s, _ in pairs], [lv for _, lv in pairs], resamples=resamples,
                                 seed=file.seed).to_dict()
        rung_rows.add_fidelity(db, record.id, factor=factor, candidates=candidates, noise=noise, stats=stats)
    return FidelityReport(study.name, factor, candidates, noise, stats)


def _train(evaluator, row, objectives) -> list[float | None]:
    """The objectives of `row`'s proxy spec trained by `evaluator` (analytic ones are the stored values)."""
    analytic = {o.metric: v for o, v in zip(objectives, row.objectives) if o.metric in ANALYTIC}
    result = evaluator(parse_spec(row.spec), lambda step, metrics: None)
    if result.get("status") != "completed":
        return [analytic.get(o.metric) for o in objectives]  # the diverged long run ranks nothing
    return [o.value_from(result, analytic) for o in objectives]
