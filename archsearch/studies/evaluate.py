"""What trains a candidate: `train()` from archsearch.training, behind a two-argument call so the runner does not
know about tasks and recipes (and a test can hand the runner any real computation instead)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError
from ..spec import ModelSpec

StepCallback = Callable[[int, dict[str, float]], None]


class Evaluator(Protocol):
    final_step: int | None  # the step of the last evaluation (None: unknown); a trial is never stopped there
    # optional: `plan(spec) -> TrialPlan`, when the last step or the comparison axis depends on the spec

    def __call__(self, spec: ModelSpec, callback: StepCallback, *, out_dir: Path | None = None) -> dict[str, Any]:
        """Train `spec`, calling `callback(step, metrics)` after each evaluation (it may raise to stop the run);
        return TrainResult.to_dict(): status, reason, metrics, curve, tokens_per_s, ..."""


def resolve_training(task: str | dict, recipe: dict, seed: int | None = None):
    """The task and recipe objects of archsearch.training, validated (errors name the study file's field)."""
    from pydantic import ValidationError

    from ..training import Recipe, TaskSpec

    try:
        task_obj = task if isinstance(task, str) else TaskSpec.model_validate(task)
    except ValidationError as err:
        raise UserError(f"task: {err.errors()[0]['loc']}: {err.errors()[0]['msg']}") from None
    data = dict(recipe)
    if seed is not None and "seed" in Recipe.model_fields:
        data.setdefault("seed", seed)
    data.setdefault("precision", "auto")  # a study's trials: fp8 on a GPU only where it pays (training.fp8_table)
    data.setdefault("compile", "auto")  # layer by layer on a GPU (a later trial compiles nothing), eager on a CPU
    data.setdefault("cuda_graph", "auto")  # the step replayed as one CUDA graph where it can be (GPU, no teacher)
    try:
        recipe_obj = Recipe.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"recipe.{'.'.join(map(str, first['loc']))}: {first['msg']}; fields: "
                        f"{', '.join(Recipe.model_fields)}") from None
    return task_obj, recipe_obj


@dataclass(frozen=True)
class TrialPlan:
    """What the runner needs to know before a trial trains: its last step (never stopped there) and what early
    stopping compares it on (archsearch.studies.early_stop: "step", or equal "tokens" / "flops" seen)."""

    final_step: int | None
    axis: str = "step"
    per_step: float = 1.0  # tokens or FLOPs per step, for axis tokens / flops


def compute_key(plan: TrialPlan):
    """The step under which a trial reports its curve to Optuna (what a pruner compares across trials).

    By step when trials train the same steps; under a tokens or FLOPs budget each trial trains its own step count,
    so an evaluation is keyed by how much of the budget it has used, in permille: trials evaluating at the same
    fractions of the run (`eval_every: 0.1`) then meet at the same keys, i.e. at equal compute."""
    if plan.axis == "step" or not plan.final_step:
        return lambda step: step
    return lambda step: round(1000 * step / plan.final_step)


def plan_of(evaluator, spec: ModelSpec) -> TrialPlan:
    """The evaluator's plan for `spec`: its own `plan(spec)`, else its fixed `final_step` compared by step."""
    plan = getattr(evaluator, "plan", None)
    if plan is not None:
        try:
            return plan(spec)
        except UserError:  # e.g. a budget that buys this spec no step: training fails with the same message
            return TrialPlan(None)
    return TrialPlan(getattr(evaluator, "final_step", None))


def trained_of(result: dict[str, Any]) -> dict[str, Any] | None:
    """What a run actually trained, for the trial's stored attributes: the budget kind, steps, tokens, FLOPs."""
    if not isinstance(result, dict) or "steps" not in result:
        return None
    budget = result.get("budget") or {}
    return {"budget": budget.get("kind", "steps"), "requested": budget.get("requested"),
            "planned_steps": budget.get("steps"), "steps": result.get("steps"), "tokens": result.get("tokens"),
            "flops": result.get("flops")}


def record_trained(trial, result: dict[str, Any]) -> None:
    """Store `trained_of(result)` as the Optuna trial's user attribute "trained" (when the result has it), the
    precision with why it was chosen ("precision"), where the run's time went ("timing": compile and warm-up
    vs training steps, archsearch.training.loop.Trainer.timing) and whether its step ran as one CUDA graph
    ("cuda_graph": a trial whose capture failed is slower for that reason, not for its architecture)."""
    trained = trained_of(result)
    if trained is not None:
        trial.set_user_attr("trained", trained)
    if not isinstance(result, dict):
        return
    extra = result.get("extra") or {}
    if result.get("precision") is not None:
        trial.set_user_attr("precision", {"name": result["precision"], "reason": result.get("precision_reason"),
                                          "auto": extra.get("precision_auto")})
    if extra.get("timing") is not None:
        trial.set_user_attr("timing", {**extra["timing"], "compile": extra.get("compile_info")})
    if extra.get("cuda_graph") is not None:
        trial.set_user_attr("cuda_graph", extra["cuda_graph"])


class TrainEvaluator:
    """Runs archsearch.training.train for each candidate."""

    def __init__(self, task: str | dict, recipe: dict, *, seed: int | None = None, device: str | None = None,
                 nproc: int | None = None, recall: bool = False):
        self.task, self.recipe = resolve_training(task, recipe, seed)
        self.device = device
        self.nproc = nproc  # data-parallel processes per trial (torchrun); None trains in this process
        self.recall = recall  # score each trained model on in-context recall (archsearch.training.recall)
        self._probe = None

    @property
    def final_step(self) -> int | None:
        return self.recipe.steps  # None with a tokens / FLOPs budget: it depends on the spec (plan)

    def budget(self, spec: ModelSpec):
        """This spec's resolved length (archsearch.training.budget.Budget) at the task's seq_len."""
        from ..training.budget import resolve_budget
        from ..training.tasks import TaskSpec, task_seq_len

        return resolve_budget(self.recipe, spec, task_seq_len(TaskSpec.coerce(self.task), self.recipe.seq_len))

    def plan(self, spec: ModelSpec) -> TrialPlan:
        budget = self.budget(spec)
        return TrialPlan(budget.steps, budget.axis, budget.per_step())

    @property
    def pauses_in_memory(self) -> bool:
        """Whether a call takes `pauses` (archsearch.training.loop.Pauses): successive halving then decides each
        rung inside the run instead of stopping, saving and resuming it. Not data-parallel: the model is
        elsewhere."""
        return self.nproc is None

    def __call__(self, spec: ModelSpec, callback: StepCallback, *, out_dir: Path | None = None,
                 resume: bool = False, pauses=None) -> dict[str, Any]:
        """`resume=True` continues the checkpoint in `out_dir` (successive halving's promoted trials). With
        `recall`, the trained (or stopped) model's recall joins its metrics: scored in memory at the run's end, or,
        data-parallel (the model is in other processes), read back from the run folder (a temporary one when
        `out_dir` is None). `pauses`: see `pauses_in_memory`."""
        import tempfile

        from ..training import TrainingStopped, train

        if self.nproc is None:  # in this process: recall in memory, no checkpoint written and read back to score it
            final_metrics = self._recall_metrics if self.recall else None
            return train(spec, self.task, self.recipe, out_dir=out_dir, callback=callback, progress=False,
                         device=self.device, resume=resume, final_metrics=final_metrics, pauses=pauses).to_dict()
        if pauses is not None:
            raise ValueError("pauses need the model in this process: not with nproc")
        if self.recall and out_dir is None:
            with tempfile.TemporaryDirectory(prefix="archsearch-recall-") as scratch:
                return self(spec, callback, out_dir=Path(scratch) / "run", resume=resume)
        try:
            result = train(spec, self.task, self.recipe, out_dir=out_dir, callback=callback, progress=False,
                           device=self.device, nproc=self.nproc, resume=resume)
        except TrainingStopped as err:  # a stop saved the model: its recall is part of what the stop reports
            if self.recall and err.result is not None:
                err.result.metrics["recall"] = self.recall_of(out_dir)
            raise
        if self.recall and result.status == "completed":
            result.metrics["recall"] = self.recall_of(out_dir)
        return result.to_dict()

    def _recall_metrics(self, model) -> dict[str, float]:
        """train()'s final_metrics: the recall probe on the trained weights, in memory (float32, as trained)."""
        from ..training.recall import recall_score

        return {"recall": recall_score(model, self.probe(), next(model.parameters()).device)}

    def probe(self):
        """The study's recall probe, made once: the same queries for every candidate, of ids the task shows."""
        from ..training.recall import RecallProbe
        from ..training.tasks import TaskSpec, make_task

        if self._probe is None:
            task = make_task(TaskSpec.coerce(self.task), self.recipe.seq_len, self.recipe.seed)
            self._probe = RecallProbe.fitting(task.vocab_size, task.seq_len, ids=task.probe_vocabulary())
        return self._probe

    def recall_of(self, out_dir: Path) -> float:
        """The recall probe's score of the model saved in `out_dir`, on the task's vocabulary and length."""
        from ..training.recall import recall_of_run

        return recall_of_run(Path(out_dir), self.probe(), self.device)
