"""The trials table: its columns for one study, and sorting, filtering and paging of the rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .filters import FilterError, numeric_filter, text_filter
from .views import StudyView, TrialRow

MAX_PAGE = 500


@dataclass(frozen=True)
class Column:
    key: str  # stable id used in URLs: "number", "obj:0", "param:d_model", ...
    label: str
    numeric: bool
    get: Callable[[TrialRow], Any]


def columns(study: StudyView) -> list[Column]:
    cols = [Column("number", "#", True, lambda r: r.number),
            Column("status", "status", False, lambda r: r.status),
            Column("pattern", "pattern", False, lambda r: r.pattern)]
    if study.halving is not None:  # the last rung reached, counted from 1 as the label shows it
        cols.append(Column("rung", "rung", True, lambda r: None if r.rung is None else r.rung + 1))
    for i, objective in enumerate(study.objectives):
        arrow = "↓" if objective.direction == "minimize" else "↑"
        cols.append(Column(f"obj:{i}", f"{objective.metric} {arrow}", True,
                           lambda r, i=i: r.values[i] if i < len(r.values) else None))
    cols += [Column("verdict", "constraints", False, lambda r: r.verdict),
             Column("n_params", "params", True, lambda r: r.n_params),
             Column("memory", study.memory.label if study.memory else "memory", True, lambda r: r.memory_bytes),
             Column("tokens_per_s", "tokens/s", True, lambda r: r.tokens_per_s),
             Column("precision", "precision", False, lambda r: r.precision),
             Column("backends", "backends", False, lambda r: r.backends_text)]
    for name in study.param_names:
        cols.append(Column(f"param:{name}", name, False, lambda r, name=name: r.params.get(name)))
    return cols


def _param_numeric(rows: list[TrialRow], name: str) -> bool:
    values = [r.params.get(name) for r in rows if r.params.get(name) is not None]
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _sort_key(column: Column) -> Callable[[TrialRow], Any]:
    if column.numeric:
        return column.get
    return lambda r: str(column.get(r)).lower()


@dataclass(frozen=True)
class Page:
    total: int  # rows in the study
    matching: int  # rows after filtering
    offset: int
    rows: list[TrialRow]


def query(study: StudyView, rows: list[TrialRow], *, sort: str = "number", descending: bool = False,
          filters: Mapping[str, str] | None = None, offset: int = 0, limit: int = 50) -> Page:
    cols = {c.key: c for c in columns(study)}
    for key, col in list(cols.items()):
        if key.startswith("param:") and _param_numeric(rows, key[6:]):
            cols[key] = Column(col.key, col.label, True, col.get)
    if sort not in cols:
        raise FilterError(f"sort: unknown column {sort!r}; allowed: {', '.join(cols)}")
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise FilterError(f"limit must be 1..{MAX_PAGE} and offset >= 0, got limit={limit}, offset={offset}")
    kept = rows
    for key, expression in (filters or {}).items():
        if not expression.strip():
            continue
        if key not in cols:
            raise FilterError(f"filter: unknown column {key!r}; allowed: {', '.join(cols)}")
        col = cols[key]
        test = numeric_filter(col.label, expression) if col.numeric else text_filter(expression)
        kept = [r for r in kept if test(col.get(r))]
    # Missing values always go last, whatever the direction, so they never hide the best rows; the sort is
    # stable, so ties keep trial-number order.
    missing = [r for r in kept if cols[sort].get(r) is None]
    present = sorted((r for r in kept if cols[sort].get(r) is not None), key=_sort_key(cols[sort]),
                     reverse=descending)
    ordered = present + missing
    return Page(total=len(rows), matching=len(kept), offset=offset, rows=ordered[offset:offset + limit])


def numeric_keys(study: StudyView, rows: list[TrialRow]) -> set[str]:
    keys = {c.key for c in columns(study) if c.numeric}
    return keys | {f"param:{n}" for n in study.param_names if _param_numeric(rows, n)}
