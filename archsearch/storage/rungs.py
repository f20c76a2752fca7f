"""Reads and writes of successive-halving rungs and proxy-fidelity measurements (archsearch.studies.halving,
archsearch.studies.fidelity)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .database import Database
from .models import FidelityRecord, RungRecord, TrialRecord

DECISIONS = ("promoted", "stopped", "final")


def rung_results(db: Database, study_id: int, rung: int) -> list[RungRecord]:
    """Every result recorded at `rung`, the earliest trial first."""
    with db.session() as session:
        return list(session.scalars(sa.select(RungRecord).where(RungRecord.study_id == study_id,
                                                                RungRecord.rung == rung)
                                    .order_by(RungRecord.trial_number)))


def decide_rung(db: Database, *, study_id: int, trial_number: int, rung: int, fraction: float, step: int,
                objectives: list[float], feasible: bool, decision: str, worker: str | None) -> str:
    """Store this trial's result and `decision` at `rung`, unless a decision is stored already (a retry, another
    worker): the stored one wins, and is returned. The unique key (study, trial, rung) makes it once."""
    if decision not in DECISIONS:
        raise ValueError(f"rung decision {decision!r}; allowed: {', '.join(DECISIONS)}")
    try:
        with db.session() as session:
            session.add(RungRecord(study_id=study_id, trial_number=trial_number, rung=rung, fraction=fraction,
                                   step=step, objectives=list(objectives), feasible=feasible, decision=decision,
                                   worker=worker))
        return decision
    except IntegrityError:
        with db.session() as session:
            return session.scalar(sa.select(RungRecord.decision).where(
                RungRecord.study_id == study_id, RungRecord.trial_number == trial_number, RungRecord.rung == rung))


def stored_decision(db: Database, study_id: int, trial_number: int, rung: int) -> str | None:
    with db.session() as session:
        return session.scalar(sa.select(RungRecord.decision).where(
            RungRecord.study_id == study_id, RungRecord.trial_number == trial_number, RungRecord.rung == rung))


def set_trial_rung(db: Database, trial_row_id: int, rung: int) -> None:
    with db.session() as session:
        session.execute(sa.update(TrialRecord).where(TrialRecord.id == trial_row_id).values(rung=rung))


def add_fidelity(db: Database, study_id: int, *, factor: float, candidates: list[dict[str, Any]],
                 noise: dict[str, Any] | None, stats: dict[str, Any]) -> int:
    with db.session() as session:
        record = FidelityRecord(study_id=study_id, factor=factor, candidates=candidates, noise=noise, stats=stats)
        session.add(record)
        session.flush()
        return record.id


def fidelity_of(db: Database, study_id: int) -> list[FidelityRecord]:
    """The study's fidelity measurements, the latest last."""
    with db.session() as session:
        return list(session.scalars(sa.select(FidelityRecord).where(FidelityRecord.study_id == study_id)
                                    .order_by(FidelityRecord.id)))
