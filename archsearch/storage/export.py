"""Export stored trials as CSV, JSON or Parquet: one row per trial.

JSON keeps nested values (spec, curve, budget) as they are, and is strict JSON: a non-finite float (the +inf
objective of an infeasible trial) is written as null. CSV and Parquet are flat: scalar params, metrics and
objectives get a column each (`param.d_model`, `metric.val_loss`, `objective.val_loss`); the nested values are
JSON text columns.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import UserError
from .database import Database
from .models import StudyRecord, TrialRecord

FORMATS = ("csv", "json", "parquet")
_NESTED = ("spec", "budget", "constraints", "curve", "backends", "versions", "params", "metrics", "objectives",
           "target")
_SCALARS = ("number", "status", "retry_of", "spec_hash", "pattern", "pattern_compact", "n_params", "fits",
            "precision", "tokens_per_s", "mfu", "peak_memory_bytes", "train_time_s", "overhead_s", "wall_time_s",
            "error", "worker", "out_dir", "candidate_key", "duplicate_of")


def trial_rows(db: Database, study: str | None = None) -> list[dict[str, Any]]:
    """Every trial (of one study, or of all) as a dict with nested values kept."""
    with db.session() as session:
        query = sa.select(StudyRecord, TrialRecord).join(TrialRecord).order_by(StudyRecord.id, TrialRecord.number)
        if study is not None:
            if session.scalar(sa.select(StudyRecord.id).where(StudyRecord.name == study)) is None:
                names = session.scalars(sa.select(StudyRecord.name)).all()
                raise UserError(f"no study named {study!r} in this storage; stored: {', '.join(names) or '(none)'}")
            query = query.where(StudyRecord.name == study)
        rows = []
        for study_record, trial in session.execute(query):
            row: dict[str, Any] = {"study": study_record.name}
            row.update({name: getattr(trial, name) for name in _SCALARS})
            row.update({name: getattr(trial, name) for name in _NESTED})
            row["objective_names"] = [o["metric"] for o in study_record.objectives]
            row["started_at"] = trial.started_at.isoformat() if trial.started_at else None
            row["finished_at"] = trial.finished_at.isoformat() if trial.finished_at else None
            rows.append(row)
    return rows


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in _NESTED and k != "objective_names"}
    for prefix, source in (("param", row.get("params")), ("metric", row.get("metrics"))):
        for key, value in sorted((source or {}).items()):
            out[f"{prefix}.{key}"] = value if not isinstance(value, (dict, list)) else json.dumps(value)
    for name, value in zip(row["objective_names"], row.get("objectives") or []):
        out[f"objective.{name}"] = value
    target = row.get("target") or {}
    out["target.name"], out["target.n_params"] = target.get("name"), target.get("n_params")
    for name in ("spec", "budget", "constraints", "curve", "backends", "versions", "target"):
        out[name] = json.dumps(row[name]) if row.get(name) is not None else None
    return out


def export(db: Database, fmt: str, out: str | Path | None, study: str | None = None) -> str | None:
    """Write the trials to `out` (or return the text, for csv/json, when `out` is None)."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not supported; allowed: {', '.join(FORMATS)}")
    if out is not None:
        _check_writable(Path(out))  # before reading every trial
    rows = trial_rows(db, study)
    if fmt == "json":
        text = json.dumps(finite(rows), indent=1, default=str, allow_nan=False)
        return _emit(text, out)
    flat = [flatten(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns.extend(key for key in row if key not in columns)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
        return _emit(buffer.getvalue(), out)
    if out is None:
        raise UserError("--format parquet writes a file: give -o/--output PATH")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("--format parquet needs pyarrow (pip install pyarrow)") from None
    # Columns whose values mix types (a param that is an int in one trial and a string in another) become text.
    table = {}
    for column in columns:
        values = [row.get(column) for row in flat]
        kinds = {type(v) for v in values if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            values = [None if v is None else str(v) for v in values]
        elif kinds == {int, float}:
            values = [None if v is None else float(v) for v in values]
        table[column] = values
    try:
        pq.write_table(pa.table(table), str(out))
    except OSError as err:
        raise UserError(f"--output {str(out)!r}: cannot write it ({err.strerror or err})") from None
    return None


def finite(value: Any) -> Any:
    """`value` with every non-finite float (inf, -inf, nan) replaced by None, in nested dicts and lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _check_writable(out: Path) -> None:
    """--output must name a file this process can create or replace: refused with its name before any work."""
    if out.is_dir():
        raise UserError(f"--output {str(out)!r} is a folder; allowed: a file path")
    parent = out.expanduser().absolute().parent
    if not parent.is_dir():
        raise UserError(f"--output {str(out)!r}: the folder {str(parent)!r} does not exist")
    import os

    if not os.access(out if out.exists() else parent, os.W_OK):
        raise UserError(f"--output {str(out)!r}: not writable here (permission denied)")


def _emit(text: str, out: str | Path | None) -> str | None:
    if out is None:
        return text
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"--output {str(out)!r}: cannot write it ({err.strerror or err})") from None
    return None
