"""Ablation summaries as stored by `archsearch ablate`: one table per ablation, one row per cell."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ..storage.models import AblationRecord, AblationRunRecord


@dataclass
class AblationView:
    id: int
    name: str
    metric: str
    vary: list[Any]
    seeds: list[Any]
    created_at: dt.datetime
    run_counts: dict[str, int]
    rows: list[dict[str, Any]]  # the stored summary, one dict per cell (archsearch.studies.ablation.summary)


def _has_tables(engine: Engine) -> bool:
    with engine.connect() as conn:
        return sa.inspect(conn).has_table(AblationRecord.__tablename__)


def list_ablations(engine: Engine) -> list[AblationView]:
    if not _has_tables(engine):
        return []
    with Session(engine) as session:
        ids = list(session.scalars(sa.select(AblationRecord.id).order_by(AblationRecord.id)))
    return [ablation(engine, i) for i in ids]


def ablation(engine: Engine, ablation_id: int) -> AblationView | None:
    if not _has_tables(engine):
        return None
    with Session(engine) as session:
        record = session.get(AblationRecord, ablation_id)
        if record is None:
            return None
        counts = dict(session.execute(
            sa.select(AblationRunRecord.status, sa.func.count()).where(AblationRunRecord.ablation_id == ablation_id)
            .group_by(AblationRunRecord.status)).all())
        rows = [r for r in (record.summary or []) if isinstance(r, dict)]
        return AblationView(record.id, record.name, record.metric, record.vary or [], record.seeds or [],
                            record.created_at, counts, rows)
