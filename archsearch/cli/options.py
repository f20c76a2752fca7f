"""One rule for numeric command-line options: a documented range, checked by click before the command runs.

`bounded(...)` builds a typer option whose --help states its range and whose value is refused (usage error,
exit 2, naming the option and the range) when it is outside it or not finite (nan, inf). Ranges come from
archsearch.limits, the same table the recipe model uses.
"""

from __future__ import annotations

import math
from typing import Any

import typer


def _show(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def describe(low: float | None, high: float | None, low_open: bool = False) -> str:
    left = "(" if low_open else "["
    return f"{left}{'-inf' if low is None else _show(low)}, {'inf' if high is None else _show(high)}]"


def bounded(default: Any, *names: str, low: float | None, high: float | None, low_open: bool = False,
            help: str = "") -> Any:
    """A typer.Option taking a number in [low, high] (or (low, high] with `low_open`); None passes through."""
    allowed = describe(low, high, low_open)

    def check(value):
        if value is None:
            return value
        finite = not isinstance(value, float) or math.isfinite(value)
        below = low is not None and (value <= low if low_open else value < low)
        above = high is not None and value > high
        if not finite or below or above:
            raise typer.BadParameter(f"{_show(value)} is out of range; allowed: {allowed}")
        return value

    text = f"{help} {allowed}".strip() if help else allowed
    return typer.Option(default, *names, callback=check, help=text)
