"""Training one trial rung by rung under successive halving (the rule: archsearch.studies.halving).

The trial's run lives in its run folder beside the storage, named by the trial it re-runs when it is a retry, so a
retried trial resumes from its last saved rung's checkpoint instead of starting again. At each rung but the last the
rung's values are ranked against every result at that rung and the decision is stored once (archsearch.storage.rungs).
An evaluator that trains in this process decides inside the run (training.Pauses): a stopped trial ends there with no
checkpoint written, a promoted one trains on with the model still in memory, after saving a checkpoint when it has
trained longer than `halving.checkpoint_min_s` since its last save. Otherwise (a data-parallel trial, a toy evaluator)
the run stops with its checkpoint saved at each rung and a promoted trial resumes from it.
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
    """A trial not promoted at a rung: the runner records it as `stopped` (its `kind`). Final: nothing resumes it,
    so the run saves its checkpoint only where the study keeps run folders (`save_checkpoint`, set per study)."""

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
    rungs = _Rungs(runner, trial, origin, targets, fractions, verdict, directions, config, stops)
    try:
        result = _train(runner, spec, callback, out, resume, at, targets, rungs)
    except RungStopped as stop:
        _drop_unkept(runner, out, stop.result)
        raise
    except Exception:  # failed (out of memory, a bug): recorded as failed and never retried, so nothing resumes it
        _drop_unkept(runner, out, None)
        raise
    _drop_unkept(runner, out, result)
    return result


def _drop_unkept(runner, out: Path, result) -> None:
    """With `keep_checkpoints: none` a finished trial's folder served only to resume it between rungs: it goes (a
    100M proxy's weights and AdamW state are ~1.2 GB a checkpoint; a long study would fill the disk), and the
    record no longer names it."""
    if runner.study.file.keep_checkpoints != "none":
        return
    # state.json first: it marks a complete checkpoint, so a removal cut short leaves nothing a retry would resume
    (out / "state.json").unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    if isinstance(result, dict):
        result["out_dir"] = None
    elif result is not None:
        result.out_dir = None


def _train(runner, spec, callback, out: Path, resume: bool, at: int, targets: list[int], rungs: "_Rungs"):
    """The trial's run through its rungs: judged inside one run where the evaluator can pause in memory, else
    stopped, saved and resumed at each rung."""
    if getattr(runner.evaluator, "pauses_in_memory", False):
        from ..training.loop import Pauses

        # under keep_checkpoints none the folder goes once the trial ends (_drop_unkept): no final checkpoint
        result = runner.evaluator(spec, callback, out_dir=out, resume=resume,
                                  pauses=Pauses(tuple(t for t in targets[:-1] if t > at), rungs.judge,
                                                save_at_end=runner.study.file.keep_checkpoints != "none",
                                                checkpoint_min_s=runner.study.file.halving.checkpoint_min_s))
        rungs.finish(result)
        return result
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
            try:
                rungs.judge(partial, step=reached.step)
            except RungStopped as stop:
                raise stop.with_result(reached.result) from None
            resume, at = True, reached.step
            continue
        rungs.finish(result)
        return result


class _Rungs:
    """One trial's rung decisions: judged at each rung, the last recorded as final."""

    def __init__(self, runner, trial, origin: int, targets: list[int], fractions: list[float], verdict, directions,
                 config: HalvingConfig, stops: list) -> None:
        self.runner, self.trial, self.origin, self.targets, self.fractions = runner, trial, origin, targets, fractions
        self.verdict, self.directions, self.config, self.stops = verdict, directions, config, stops

    def judge(self, partial: dict[str, Any], step: int | None = None) -> None:
        """Decide the rung the run has reached (the highest whose step it passed: one evaluation may pass more
        than one) from its record so far; raises RungStopped (also kept in `stops`) when it is not promoted."""
        runner, fractions = self.runner, self.fractions
        step = int(partial["steps"]) if step is None else step
        rung = max(i for i, t in enumerate(self.targets[:-1]) if t <= step)
        decision = _decide(runner, self.origin, rung, fractions[rung], step, partial, self.verdict, self.directions,
                           self.config)
        _record(runner, self.trial, rung, fractions[rung], step, decision)
        if decision == "stopped":
            n = len(rung_rows.rung_results(runner.db, runner.record.id, rung))
            # rungs are stored from 0; people (and the dashboard) count them from 1
            stop = RungStopped(f"stopped at rung {rung + 1} of {len(fractions)} (step {step}, "
                               f"{fractions[rung]:g} of the budget): "
                               f"not among the best {self.config.keep:.3g} of {n} results there")
            # a kept folder holds the run as its record says it ended; an unkept one is removed: no save for it
            stop.save_checkpoint = runner.study.file.keep_checkpoints != "none"
            self.stops.append(stop)
            raise stop

    def finish(self, result: dict[str, Any]) -> None:
        """The full run's values join the last rung, as `final`."""
        runner, final = self.runner, len(self.targets) - 1
        step = int(result.get("steps") or self.targets[-1])
        values = _values(runner, result, self.verdict)
        if values is not None:
            rung_rows.decide_rung(runner.db, study_id=runner.record.id, trial_number=self.origin, rung=final,
                                  fraction=1.0, step=step, objectives=values, feasible=self.verdict.fits,
                                  decision="final", worker=runner.worker)
        _record(runner, self.trial, final, 1.0, step, "final")


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
