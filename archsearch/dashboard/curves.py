"""Loss curves as stored (`[{step, val_loss, ...}]`): which metrics they hold and one metric's series."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFERRED = ("val_loss", "loss", "train_loss")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def curve_metrics(curves: Mapping[Any, list[dict[str, Any]]]) -> list[str]:
    """Every metric any curve holds, the usual loss names first."""
    names: dict[str, None] = {}
    for points in curves.values():
        for point in points:
            names.update({k: None for k, v in point.items() if k != "step" and _number(v)})
    first = [m for m in PREFERRED if m in names]
    return first + [m for m in names if m not in first]


def curve_series(points: list[dict[str, Any]], metric: str) -> list[tuple[float, float]]:
    return [(float(p["step"]), float(p[metric])) for p in points if _number(p.get("step")) and _number(p.get(metric))]


def partial_series(partial, metric: str) -> list[tuple[float, float]]:
    """A running trial's curve so far (a `views.Partial`), when it reports `metric`."""
    if partial is None or partial.metric != metric:
        return []
    return [(float(step), value) for step, value in partial.points]
