"""Multi-objective successive halving (asynchronous, the stopping variant of ASHA with MOASHA's ranking).

A study with `halving: {rungs: [0.25, 0.5, 1.0], keep: 1/3}` trains each candidate in rungs: fractions of the
recipe's length for that candidate (steps, or the steps its tokens / FLOPs budget buys, so every rung is at equal
compute under a tokens or FLOPs budget). The learning-rate schedule is always the full length's: a rung is a pause
of the one full run, never a shorter run of its own.

At a rung (an evaluation at its step; where the run cannot pause in this process, the first evaluation at or past
it) the run pauses. Its objective values join the rung's results (table archsearch_rungs). The trial is promoted
when it is among the best `keep` share of every result at that rung so far, ranked by non-dominated sorting over the
study's objectives (constraint-violating results after all feasible ones), ties within a front broken by
crowding distance (the more isolated first, as NSGA-II), then by the earlier trial. While fewer than
`min_results` results exist at a rung (default ceil(1 / keep)) there is nothing to judge against: the trial is
promoted. A promoted trial trains on to the next rung (same weights, optimizer, RNG, data position and schedule:
in memory, saving a checkpoint in the trial's run folder when it has trained longer than `checkpoint_min_s` since
its last save; or, where the run cannot pause in this process, resumed from the checkpoint saved at the rung, see
archsearch.studies.promotion); the others stop with status `stopped` and their
rung recorded (column `rung`, user attribute "rung"). The decision is one row per (study, trial, rung) under a
unique key: a retried trial, or any other worker, reads the decision once made instead of making another.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from ..storage.pareto import dominates
from ..storage.urls import safe_folder_name, sqlite_sibling
from ..training.result import TrainingStopped  # torch-free

RUNS_ROOT = Path("~/.cache/archsearch/runs")


_FRACTION = r"^\s*\d+\s*/\s*\d+\s*$"


def _number(field: str, value: Any, allowed: str) -> Any:
    """A number as given, or a fraction written as text ("1/3") as its value."""
    if isinstance(value, str) and re.fullmatch(_FRACTION, value):
        numerator, denominator = (int(p) for p in value.split("/"))
        if denominator == 0:
            raise ValueError(f"{field} {value!r} divides by zero; allowed: {allowed}")
        return numerator / denominator
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} {value!r} is not a number; allowed: {allowed}")
    return value


class HalvingConfig(BaseModel):
    """The study file's `halving:` section."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    # Numbers, or fractions written as text ("1/3"): the schema says both, as the validators below read both.
    rungs: Annotated[list[float], Field(min_length=2, max_length=16), WithJsonSchema({
        "description": "fractions of the recipe's length, rising, the last 1: numbers or fractions such as 1/9",
        "type": "array", "minItems": 2, "maxItems": 16, "items": {"anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "string", "pattern": _FRACTION}]}})]
    keep: Annotated[float, WithJsonSchema({"description": "the share of each rung's results promoted to the next: "
                                                          "a number in (0, 1) or a fraction such as 1/3", "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        {"type": "string", "pattern": _FRACTION}]})] = 1 / 3
    min_results: Annotated[int, Field(ge=1, le=100_000)] | None = None
    # A promoted trial saves a checkpoint (a crash then resumes there, not from the start) only when it has trained
    # longer than this since its last save: on the H100 a 40-60M proxy's save took 1-3 s, against whole trials of
    # 2-5 s (bench/RESULTS.md, 2026-12-06 fourth session). 0: always. Data-parallel trials save at every rung.
    checkpoint_min_s: Annotated[float, Field(ge=0, le=86_400, description=(
        "seconds: a promoted trial saves a checkpoint to resume from after a crash only when it has trained "
        "longer than this since its last save (what a crash would lose); 0 saves at every promotion"))] = 30.0

    @field_validator("keep", mode="before")
    @classmethod
    def _fraction(cls, value: Any) -> Any:
        return _number("keep", value, "a fraction in (0, 1), e.g. 1/3 or 0.5")

    @field_validator("rungs", mode="before")
    @classmethod
    def _fractions(cls, value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return value  # the list type's own error names it
        return [_number(f"rungs[{i}]", v, "a fraction in (0, 1], e.g. 1/9 or 0.25") for i, v in enumerate(value)]

    @model_validator(mode="after")
    def _check(self) -> "HalvingConfig":
        if not 0 < self.keep < 1:
            raise ValueError(f"keep {self.keep:g} is outside (0, 1); allowed: the share promoted at each rung, "
                             "e.g. 1/3 or 0.5")
        if any(not 0 < r <= 1 for r in self.rungs) or any(b <= a for a, b in zip(self.rungs, self.rungs[1:])):
            raise ValueError(f"rungs {self.rungs} must rise strictly within (0, 1] (fractions of the recipe's length)")
        if self.rungs[-1] != 1:
            raise ValueError(f"rungs {self.rungs} must end at 1.0 (the recipe's full length)")
        return self

    @property
    def threshold(self) -> int:
        """Results a rung needs before it judges (below that every trial is promoted)."""
        return self.min_results if self.min_results is not None else math.ceil(1 / Fraction(self.keep).limit_denominator(1000))

    def rung_steps(self, final_step: int) -> list[int]:
        """Each rung's step for a run of `final_step` steps (rising, the last = final_step)."""
        steps: list[int] = []
        for fraction in self.rungs:
            step = final_step if fraction == 1 else max(1, math.ceil(fraction * final_step))
            if not steps or step > steps[-1]:
                steps.append(step)
        return steps


class RungReached(TrainingStopped):
    """Raised from the training callback at a rung: training saves its checkpoint and hands back its record."""

    def __init__(self, rung: int, step: int, metrics: dict[str, float]):
        self.rung, self.step, self.metrics = rung, step, dict(metrics)
        super().__init__(f"rung {rung} reached at step {step}")


# ------------------------------------------------------------------------------------------------ ranking
def _fronts(points: Sequence[Sequence[float]], directions: Sequence[str]) -> list[list[int]]:
    """Non-dominated sorting: indices by front, the first front first."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        front = [i for i in remaining if not any(dominates(points[j], points[i], directions)
                                                 for j in remaining if j != i)]
        fronts.append(front)
        remaining = [i for i in remaining if i not in front]
    return fronts


def _crowding(points: Sequence[Sequence[float]], front: list[int]) -> dict[int, float]:
    distance = {i: 0.0 for i in front}
    for m in range(len(points[front[0]]) if front else 0):
        ordered = sorted(front, key=lambda i: points[i][m])
        low, high = points[ordered[0]][m], points[ordered[-1]][m]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if high == low:
            continue
        for before, at, after in zip(ordered, ordered[1:], ordered[2:]):
            distance[at] += (points[after][m] - points[before][m]) / (high - low)
    return distance


def rank(points: Sequence[Sequence[float]], directions: Sequence[str],
         feasible: Sequence[bool] | None = None) -> list[int]:
    """Indices of `points`, best first: feasible before infeasible, then by non-dominated front, within a front
    by crowding distance (larger first), then by index (the earlier result first)."""
    feasible = list(feasible) if feasible is not None else [True] * len(points)
    order: list[int] = []
    for group in ([i for i in range(len(points)) if feasible[i]], [i for i in range(len(points)) if not feasible[i]]):
        sub = [points[i] for i in group]
        for front in _fronts(sub, directions):
            crowd = _crowding(sub, front)
            order += [group[i] for i in sorted(front, key=lambda i: (-crowd[i], group[i]))]
    return order


def promoted(results: Sequence[tuple[Sequence[float], bool]], me: int, directions: Sequence[str],
             config: HalvingConfig) -> bool:
    """Whether result `me` of the rung's `results` ((objective values, feasible) each) is promoted."""
    n = len(results)
    if n < config.threshold:
        return True
    order = rank([values for values, _ in results], directions, [ok for _, ok in results])
    keep = max(1, math.floor(config.keep * n + 1e-9))
    return me in order[:keep]


# ------------------------------------------------------------------------------------------------ run folders
def runs_folder(url: str, study_name: str) -> Path:
    """Where a study's trials keep their run folders (checkpoints between rungs): beside a SQLite file
    (`path/x.runs/<study>/`), else `~/.cache/archsearch/runs/<study>/`."""
    return (sqlite_sibling(url, ".runs") or RUNS_ROOT.expanduser()) / safe_folder_name(study_name)
