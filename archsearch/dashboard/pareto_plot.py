"""Which trials go on the Pareto plot of two chosen axes, and in which category."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import UserError
from ..storage.pareto import pareto_front
from .figures import PlotPoint
from .views import EXTRA_AXES, FAILED_STATUSES, StudyView, TrialRow


@dataclass(frozen=True)
class Axis:
    key: str
    label: str
    direction: str


def axes(study: StudyView) -> list[Axis]:
    """The study's objectives first, then parameters, memory and throughput (always worth trading off)."""
    out = [Axis(f"obj:{i}", o.metric, o.direction) for i, o in enumerate(study.objectives)]
    for key, (label, direction) in EXTRA_AXES.items():
        if key == "memory" and study.memory is not None:
            label = study.memory.label
        out.append(Axis(key, label, direction))
    return out


def _value(row: TrialRow, key: str) -> float | None:
    if key.startswith("obj:"):
        i = int(key[4:])
        value = row.values[i] if i < len(row.values) else None
    else:
        value = {"n_params": row.n_params, "memory": row.memory_bytes, "tokens_per_s": row.tokens_per_s}[key]
    return float(value) if value is not None and math.isfinite(value) else None


def _category(row: TrialRow) -> str | None:
    if row.status == "infeasible" or row.fits is False:
        return "infeasible"
    if row.status in FAILED_STATUSES:
        return "failed"
    if row.status == "completed":
        return "feasible"
    return None  # running, pruned, stopped, interrupted: no final values; duplicate: its original is plotted


@dataclass(frozen=True)
class ParetoData:
    x: Axis
    y: Axis
    points: list[PlotPoint]
    note: str


def pareto_data(study: StudyView, rows: list[TrialRow], x_key: str, y_key: str) -> ParetoData:
    by_key = {a.key: a for a in axes(study)}
    for key in (x_key, y_key):
        if key not in by_key:
            raise UserError(f"axis {key!r} is not one of this study's: {', '.join(by_key)}")
    x, y = by_key[x_key], by_key[y_key]
    points, unplotted = [], 0
    for row in rows:
        category = _category(row)
        vx, vy = _value(row, x_key), _value(row, y_key)
        if category is None or vx is None or vy is None:
            unplotted += 1
            continue
        points.append(PlotPoint(row.id, row.number, vx, vy, category))
    feasible = [i for i, p in enumerate(points) if p.category == "feasible"]
    for j in pareto_front([(points[i].x, points[i].y) for i in feasible], (x.direction, y.direction)):
        p = points[feasible[j]]
        points[feasible[j]] = PlotPoint(p.trial_id, p.number, p.x, p.y, "front")
    duplicates = sum(row.status == "duplicate" for row in rows)
    unplotted -= duplicates
    note = f"{len(points)} trials plotted" + (f"; {unplotted} without both values (running, pruned, stopped or "
                                             "never measured) not shown" if unplotted else "")
    if duplicates:
        note += f"; {duplicates} duplicate(s) of plotted trials shown once"
    return ParetoData(x, y, points, note)
