"""Short trainings: `train(spec, task, recipe)` with FP8 where the hardware allows, synthetic recall probes and
language modelling on `datasets` sources, distillation from a teacher run, resumable run folders."""

from .loop import train
from .recipe import Distillation, Recipe
from .result import TrainingStopped, TrainResult
from .tasks import TASKS, TaskSpec

__all__ = ["TASKS", "Distillation", "Recipe", "TaskSpec", "TrainResult", "TrainingStopped", "train"]
