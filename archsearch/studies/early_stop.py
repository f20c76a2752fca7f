"""Early stop for multi-objective studies, where Optuna cannot prune (`Trial.report` raises there).

At each evaluation step, a running trial is compared with the completed trials at the same step: a completed
trial dominates it when, on every objective whose value both have at that point, it is at least as good, and it
is better by more than `margin` on at least one trained metric. Objectives known before training (parameter
count, analytic memory) are exact for both; trained metrics are read from the completed trial's curve at the same
step; an objective that either side lacks at that step means no domination (the rule never guesses). A trial
dominated by `min_dominators` completed trials for `patience` consecutive evaluations stops.

With a tokens or FLOPs budget (`axis` "tokens" / "flops") trials of different sizes train different step counts,
so the comparison is at equal compute instead: at this trial's evaluation with C tokens or FLOPs seen, each
completed trial's value is the one of its latest evaluation that had seen at most C (its curve points carry
"tokens" and "flops"), never one from further along. A completed trial with no evaluation at or below C, or a
curve without the axis, dominates nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..storage.pareto import dominates

AXES = ("step", "tokens", "flops")
_REL = 1e-9  # equal compute despite float rounding of step x FLOPs per step


@dataclass(frozen=True)
class Reference:
    """A completed trial as the rule sees it."""

    number: int
    curve: dict[int, dict[str, float]]  # step -> metrics at that evaluation
    known: dict[str, float]  # objectives known before training


def reference_from_row(number: int, curve: list[dict[str, Any]] | None, known: dict[str, float]) -> Reference:
    by_step = {}
    for point in curve or []:
        if "step" in point:
            by_step[int(point["step"])] = {k: float(v) for k, v in point.items()
                                           if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return Reference(number, by_step, dict(known))


@dataclass
class DominanceStop:
    directions: dict[str, str]  # objective metric -> "minimize" | "maximize"
    references: list[Reference]
    known: dict[str, float]  # this trial's objectives known before training
    min_completed: int = 3
    min_dominators: int = 1
    patience: int = 2
    margin: float = 0.02
    axis: str = "step"  # what "the same point" means: "step", or equal "tokens" / "flops" seen
    per_step: float = 1.0  # this trial's tokens or FLOPs per step (axis tokens / flops)
    _streak: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ValueError(f"early stop axis {self.axis!r}; allowed: {', '.join(AXES)}")

    @property
    def active(self) -> bool:
        trained = [m for m in self.directions if m not in self.known]
        return bool(trained) and len(self.references) >= self.min_completed

    def update(self, step: int, metrics: dict[str, float]) -> list[int] | None:
        """Record one evaluation; the dominating trials' numbers when the trial should stop, else None."""
        if not self.active:
            return None
        dominators = [r.number for r in self.references if self._dominates(r, step, metrics)]
        self._streak = self._streak + 1 if len(dominators) >= self.min_dominators else 0
        return dominators if self._streak >= self.patience else None

    def _at(self, ref: Reference, step: int, metric: str) -> float | None:
        """`ref`'s value of `metric` at the point matching this trial's `step` (the module docstring's rule)."""
        if self.axis == "step":
            return ref.curve.get(step, {}).get(metric)
        seen = step * self.per_step * (1 + _REL)
        best_at, value = None, None
        for point in ref.curve.values():
            at = point.get(self.axis)
            if at is not None and metric in point and at <= seen and (best_at is None or at >= best_at):
                best_at, value = at, point[metric]
        return value

    def _dominates(self, ref: Reference, step: int, metrics: dict[str, float]) -> bool:
        if self.axis == "step" and step not in ref.curve:
            return False
        mine, theirs, margins = [], [], []
        for metric in self.directions:
            if metric in self.known:  # exact for both: may not be worse, but being better never decides
                pair, margin = (self.known[metric], ref.known.get(metric)), math.inf
            else:
                pair = (metrics.get(metric), self._at(ref, step, metric))
                margin = self.margin * abs(pair[0]) if pair[0] is not None else 0.0
            if None in pair:
                return False
            mine.append(pair[0])
            theirs.append(pair[1])
            margins.append(margin)
        return dominates(theirs, mine, list(self.directions.values()), margins)
