"""Objectives: what a study optimises, in which direction, and where each value comes from.

Analytic objectives (`n_params`, `memory_bytes`) are known before training; the rest come from the training
result. A trial that is never trained (infeasible or invalid) still completes, so that Optuna's samplers learn
from its constraint values; it reports what an untrained model would: the loss of a uniform guess, zero accuracy
and throughput, and its analytic sizes. Its constraints mark it infeasible, so it is never a best trial.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

Direction = Literal["minimize", "maximize"]

# metric -> (default direction, where it lives, description)
KNOWN: dict[str, tuple[Direction, str, str]] = {
    "val_loss": ("minimize", "metrics", "validation loss after training"),
    "accuracy": ("maximize", "metrics", "task accuracy after training"),
    "recall": ("maximize", "metrics", "in-context recall of the trained model (MQAR-style key/value probes, "
                                      "archsearch.training.recall)"),
    "tokens_per_s": ("maximize", "result", "measured training throughput"),
    "mfu": ("maximize", "result", "measured model FLOPs utilisation"),
    "peak_memory_bytes": ("minimize", "result", "measured peak memory of training"),
    "n_params": ("minimize", "analytic", "exact parameter count"),
    "memory_bytes": ("minimize", "analytic", "analytic serving memory at the first budget constraint"),
    "decode_tokens_per_s": ("maximize", "analytic", "roofline decode tokens/s at the first budget constraint (its "
                                                    "device and batch, generating the last 1024 tokens of its context)"),
}
ANALYTIC = tuple(m for m, (_, where, _) in KNOWN.items() if where == "analytic")
# Metrics only some trainings report: a task's own (its `summarize`), and the distillation loss.
TASK_METRICS: dict[str, tuple[str, ...]] = {"text": ("val_ppl", "bits_per_byte")}
DISTILL_METRICS = ("kl_to_teacher",)


def produced_metrics(task_name: str | None, distill: bool) -> list[str]:
    """Every metric a training of `task_name` (None: of any task) gives a value for, so an objective can be checked
    before trials."""
    tasks = TASK_METRICS.values() if task_name is None else [TASK_METRICS.get(task_name, ())]
    return list(KNOWN) + [m for metrics in tasks for m in metrics] + (list(DISTILL_METRICS) if distill else [])


class Objective(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    direction: Direction | None = None
    # Reported by a trial that is never trained; needed only for metrics archsearch does not know.
    infeasible_value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"metric": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _defaults(self) -> "Objective":
        if self.direction is None:
            if self.metric not in KNOWN:
                raise ValueError(f"objective {self.metric!r} is not a metric archsearch knows, so give its direction "
                                 f"(minimize or maximize); known: {', '.join(KNOWN)}")
            object.__setattr__(self, "direction", KNOWN[self.metric][0])
        return self

    def untrained_value(self, vocab_size: int, analytic: dict[str, float]) -> float:
        if self.metric in analytic:
            return float(analytic[self.metric])
        if self.infeasible_value is not None:
            return self.infeasible_value
        if self.metric == "val_loss":
            return math.log(vocab_size)
        if self.metric == "peak_memory_bytes" and "memory_bytes" in analytic:
            return float(analytic["memory_bytes"])
        # Accuracy, throughput and MFU of a model that never ran: 0 is the honest figure, and the worst one.
        return 0.0 if self.direction == "maximize" else math.inf

    def value_from(self, result: dict[str, Any], analytic: dict[str, float]) -> float | None:
        """The objective's value from a TrainResult dict (None when the result does not have it)."""
        if self.metric in analytic:
            return float(analytic[self.metric])
        for source in (result.get("metrics") or {}, result):
            value = source.get(self.metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return None

    def to_dict(self) -> dict:
        return {"metric": self.metric, "direction": self.direction}
