"""Training one trial rung by rung under successive halving (the rule: archsearch.studies.halving).

The trial's run lives in its run folder beside the storage, named by the trial it re-runs when it is a retry, so a
retried trial resumes from its last rung's checkpoint instead of starting again. At each rung but the last the
run stops (its checkpoint saved), the rung's values are ranked against every result at that rung, and the
decision is stored once (archsearch.storage.rungs); a promoted trial resumes from the checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..storage import rungs as rung_rows
from ..training.result import TrainingStopped
from .evaluate import plan_of
from .halving import HalvingConfig, RungReached, promoted, runs_folder

RETRY_KEY = "failed_trial"  # Optuna's RetryHeartbeatStaleTrialCallback attribute (the runner's RETRY_KEY)


class RungStopped(TrainingStopped):
    """A trial not promoted at a rung: the runner records it as `stopped` (its `kind`)."""

    kind = "stopped"


def trial_folder(url: str, study_name: str, origin: int) -> Path:
    return runs_folder(url, study_name) / f"trial-{origin}"


def _has_checkpoint(out: Path) -> bool:
    return (out / "state.json").is_file()  # written last (training.checkpoint): the rest is there before it


def _checkpoint_step(out: Path) -> int:
    import json

    try:
        return int(json.loads((out / "state.json").read_text(encoding="utf-8")).get("step", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0  # unreadable: resuming will name the damaged file


def train_in_rungs(runner, trial, spec, callback, verdict, stops: list) -> dict[str, Any]:
    """Train `spec` for `trial` rung by rung; returns the full run's result, or raises RungStopped (appended to
    `stops`, carrying the partial record) when a rung does not promote it."""
    config: HalvingConfig = runner.study.file.halving
    plan = plan_of(runner.evaluator, spec)
    if plan.final_step is None:  # no known length: no rung can be placed, the trial trains to its end
        return runner.evaluator(spec, callback)
    targets = config.rung_steps(plan.final_step)
    attrs = runner.optuna_study._storage.get_trial_system_attrs(trial._trial_id)
    origin = attrs.get(RETRY_KEY, trial.number)
    out = trial_folder(runner.url, runner.study.name, origin)
    if RETRY_KEY not in attrs and out.exists():  # a first attempt: a folder of this number is a deleted study's
        shutil.rmtree(out)
    if origin != trial.number:  # a retry continues its original's run, whose spec carries the original's name
        spec = type(spec).model_validate({**spec.to_dict(), "name": f"{runner.study.name}-t{origin}"})
    resume = _has_checkpoint(out)
    at = _checkpoint_step(out) if resume else 0
    directions = [o.direction for o in runner.objectives]
    fractions = [config.rungs[min(i, len(config.rungs) - 1)] for i in range(len(targets))]
    while True:
        upcoming = [i for i, t in enumerate(targets) if t > at] or [len(targets) - 1]
        rung = upcoming[0]
        last = rung == len(targets) - 1

        def rung_callback(step: int, metrics: dict[str, float], rung=rung, last=last) -> None:
            callback(step, metrics)
            if not last and step >= targets[rung]:
                raise RungReached(rung, step, metrics)

        try:
            result = runner.evaluator(spec, rung_callback, out_dir=out, resume=resume)
        except RungReached as reached:
            partial = reached.result.to_dict() if reached.result is not None else {"metrics": reached.metrics}
            # the highest rung this evaluation reached (an evaluation may pass more than one rung's step)
            rung = max(i for i, t in enumerate(targets[:-1]) if t <= reached.step)
            decision = _decide(runner, origin, rung, fractions[rung], reached.step, partial, verdict, directions,
                               config)
            _record(runner, trial, rung, fractions[rung], reached.step, decision)
            if decision == "stopped":
                n = len(rung_rows.rung_results(runner.db, runner.record.id, rung))
                # rungs are stored from 0; people (and the dashboard) count them from 1
                stop = RungStopped(f"stopped at rung {rung + 1} of {len(fractions)} (step {reached.step}, "
                                   f"{fractions[rung]:g} of the budget): "
                                   f"not among the best {config.keep:.3g} of {n} results there")
                stops.append(stop)
                raise stop.with_result(reached.result) from None
            resume, at = True, reached.step
            continue
        final = len(targets) - 1
        values = _values(runner, result, verdict)
        if values is not None:
            rung_rows.decide_rung(runner.db, study_id=runner.record.id, trial_number=origin, rung=final,
                                  fraction=1.0, step=int(result.get("steps") or targets[-1]), objectives=values,
                                  feasible=verdict.fits, decision="final", worker=runner.worker)
        _record(runner, trial, final, 1.0, int(result.get("steps") or targets[-1]), "final")
        return result


def _values(runner, result: dict[str, Any], verdict) -> list[float] | None:
    values = [o.value_from(result, verdict.analytic) for o in runner.objectives]
    return None if any(v is None or v != v for v in values) else values


def _decide(runner, origin: int, rung: int, fraction: float, step: int, partial: dict, verdict, directions,
            config: HalvingConfig) -> str:
    stored = rung_rows.stored_decision(runner.db, runner.record.id, origin, rung)
    if stored is not None:  # a retry reaching a rung its first attempt passed: the decision stands
        return stored
    values = _values(runner, partial, verdict)
    if values is None:  # no value at this rung for some objective: nothing to rank it by, so it goes on
        return "promoted"
    others = [(r.objectives, r.feasible) for r in rung_rows.rung_results(runner.db, runner.record.id, rung)
              if r.trial_number != origin]
    decision = "promoted" if promoted(others + [(values, verdict.fits)], len(others), directions, config) else "stopped"
    return rung_rows.decide_rung(runner.db, study_id=runner.record.id, trial_number=origin, rung=rung,
                                 fraction=fraction, step=step, objectives=values, feasible=verdict.fits,
                                 decision=decision, worker=runner.worker)


def _record(runner, trial, rung: int, fraction: float, step: int, decision: str) -> None:
    """The rung for the dashboard: the trial row's `rung` column and the Optuna user attribute "rung"."""
    trial.set_user_attr("rung", {"rung": rung, "fraction": fraction, "step": step, "decision": decision})
    row = runner._current[1] if runner._current is not None else None
    if row is not None:
        rung_rows.set_trial_rung(runner.db, row, rung)
