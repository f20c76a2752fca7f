"""Early stop for multi-objective studies, where Optuna cannot prune (`Trial.report` raises there).

At each evaluation step, a running trial is compared with the completed trials at the same step: a completed
trial dominates it when, on every objective whose value both have at that point, it is at least as good, and it
is better by more than `margin` on at least one trained metric. Objectives known before training (parameter
count, analytic memory) are exact for both; trained metrics are read from the completed trial's curve at the same
step; an objective that either side lacks at that step means no domination (the rule never guesses). A trial
dominated by `min_dominators` completed trials for `patience` consecutive evaluations stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    _streak: int = field(default=0, init=False)

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

    def _dominates(self, ref: Reference, step: int, metrics: dict[str, float]) -> bool:
        at_step = ref.curve.get(step)
        if at_step is None:
            return False
        strictly_better = False
        for metric, direction in self.directions.items():
            if metric in self.known:
                mine, theirs = self.known[metric], ref.known.get(metric)
                margin = 0.0
            else:
                mine, theirs = metrics.get(metric), at_step.get(metric)
                margin = self.margin * abs(mine) if mine is not None else 0.0
            if mine is None or theirs is None:
                return False
            gain = (mine - theirs) if direction == "minimize" else (theirs - mine)
            if gain < 0:
                return False
            if metric not in self.known and gain > margin:
                strictly_better = True
        return strictly_better
