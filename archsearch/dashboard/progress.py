"""A running trial's progress: the curve it has reported so far, read from Optuna's intermediate values.

The runner stores the curve in our table only when a trial ends, but reports each evaluation to Optuna as it
happens (archsearch.studies.optuna_attrs: `trial.report`, or the storage for several objectives), naming the
metric in the user attribute `curve_metric`. Only Optuna's columns stable since its v3.0 schema are read.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..storage.models import TrialRecord
from .views import Partial

_values = sa.table("trial_intermediate_values", sa.column("trial_id"), sa.column("step"),
                   sa.column("intermediate_value", sa.Float))
_attrs = sa.table("trial_user_attributes", sa.column("trial_id"), sa.column("key"), sa.column("value_json"))


_SEEN: set[str] = set()  # databases whose Optuna tables were found (tables are never dropped under a reader)


def _has_optuna_tables(engine: Engine) -> bool:
    key = engine.url.render_as_string(hide_password=True)
    if key in _SEEN:
        return True
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        found = inspector.has_table("trial_intermediate_values") and inspector.has_table("trial_user_attributes")
    if found:
        _SEEN.add(key)
    return found


def _running(study_id: int):
    return sa.select(TrialRecord.optuna_trial_id).where(TrialRecord.study_id == study_id,
                                                        TrialRecord.status == "running")


def progress_stamp(engine: Engine, study_id: int) -> str:
    """Changes whenever a running trial reports an evaluation (the page then redraws its table)."""
    if not _has_optuna_tables(engine):
        return ""
    with engine.connect() as conn:
        count, top = conn.execute(sa.select(sa.func.count(), sa.func.max(_values.c.step))
                                  .where(_values.c.trial_id.in_(_running(study_id)))).one()
    return f"{count}:{top}"


def partials(engine: Engine, study_id: int, row_ids: list[int] | None = None) -> dict[int, Partial]:
    """Our row id -> its curve so far, for the study's running trials (among `row_ids`, when given) that have
    reported at least one finite value."""
    if not _has_optuna_tables(engine):
        return {}
    rows = sa.select(TrialRecord.id, TrialRecord.optuna_trial_id).where(TrialRecord.study_id == study_id,
                                                                         TrialRecord.status == "running")
    if row_ids is not None:
        rows = rows.where(TrialRecord.id.in_(row_ids))
    with engine.connect() as conn:
        ours = {optuna_id: row_id for row_id, optuna_id in conn.execute(rows)}
        if not ours:
            return {}
        metrics = {tid: value for tid, value in conn.execute(
            sa.select(_attrs.c.trial_id, _attrs.c.value_json)
            .where(_attrs.c.trial_id.in_(list(ours)), _attrs.c.key == "curve_metric"))}
        points: dict[int, list[tuple[int, float]]] = {}
        for tid, step, value in conn.execute(
                sa.select(_values.c.trial_id, _values.c.step, _values.c.intermediate_value)
                .where(_values.c.trial_id.in_(list(ours)), _values.c.intermediate_value.is_not(None))
                .order_by(_values.c.trial_id, _values.c.step)):
            points.setdefault(tid, []).append((int(step), float(value)))
    out = {}
    for tid, curve in points.items():
        try:
            metric = json.loads(metrics[tid]) if tid in metrics else "value"
        except ValueError:
            metric = "value"
        out[ours[tid]] = Partial(str(metric), curve)
    return out
