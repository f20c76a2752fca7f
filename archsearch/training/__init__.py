"""Short trainings: `train(spec, task, recipe)` with FP8 where the hardware allows, synthetic recall probes and
language modelling on `datasets` sources, distillation from a teacher run, resumable run folders.

Importing the package imports no torch: the study runner needs `TrainingStopped` and the CLI needs `Recipe` to
validate a study file, neither of which should pay for torch. `train`, `TASKS` and `TaskSpec` (torch) load on
first use."""

from .recipe import Distillation, Recipe
from .result import TrainingStopped, TrainResult

__all__ = ["TASKS", "Distillation", "Recipe", "TaskSpec", "TrainResult", "TrainingStopped", "train"]


def __getattr__(name: str):
    if name == "train":
        from .loop import train

        return train
    if name in ("TASKS", "TaskSpec"):
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module 'archsearch.training' has no attribute {name!r}")
