"""What trains a candidate: `train()` from archsearch.training, behind a two-argument call so the runner does not
know about tasks and recipes (and a test can hand the runner any real computation instead)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..errors import UserError
from ..spec import ModelSpec

StepCallback = Callable[[int, dict[str, float]], None]


class Evaluator(Protocol):
    final_step: int | None  # the step of the last evaluation (None: unknown); a trial is never stopped there

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
    try:
        recipe_obj = Recipe.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise UserError(f"recipe.{'.'.join(map(str, first['loc']))}: {first['msg']}; fields: "
                        f"{', '.join(Recipe.model_fields)}") from None
    return task_obj, recipe_obj


class TrainEvaluator:
    """Runs archsearch.training.train for each candidate."""

    def __init__(self, task: str | dict, recipe: dict, *, seed: int | None = None, device: str | None = None,
                 nproc: int | None = None):
        self.task, self.recipe = resolve_training(task, recipe, seed)
        self.device = device
        self.nproc = nproc  # data-parallel processes per trial (torchrun); None trains in this process

    @property
    def final_step(self) -> int:
        return self.recipe.steps

    def __call__(self, spec: ModelSpec, callback: StepCallback, *, out_dir: Path | None = None) -> dict[str, Any]:
        from ..training import train

        result = train(spec, self.task, self.recipe, out_dir=out_dir, callback=callback, progress=False,
                       device=self.device, nproc=self.nproc)
        return result.to_dict()
