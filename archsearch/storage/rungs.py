"""Reads and writes of successive-halving rungs, proxy-fidelity measurements and their retrainings
(archsearch.studies.halving, archsearch.studies.fidelity)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .database import Database
from .models import FidelityRecord, FidelityRunRecord, RungRecord, TrialRecord

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


FIDELITY_RUN_STATUSES = ("completed", "diverged", "stopped")  # archsearch.training.result.TrainResult.status


def add_fidelity(db: Database, study_id: int, *, factor: float, candidates: list[dict[str, Any]],
                 noise: dict[str, Any] | None, stats: dict[str, Any], partial: bool = False,
                 n_chosen: int | None = None) -> int:
    with db.session() as session:
        record = FidelityRecord(study_id=study_id, factor=factor, candidates=candidates, noise=noise, stats=stats,
                                partial=partial, n_chosen=n_chosen if n_chosen is not None else len(candidates))
        session.add(record)
        session.flush()
        return record.id


def fidelity_of(db: Database, study_id: int) -> list[FidelityRecord]:
    """The study's fidelity measurements, the latest last."""
    with db.session() as session:
        return list(session.scalars(sa.select(FidelityRecord).where(FidelityRecord.study_id == study_id)
                                    .order_by(FidelityRecord.id)))


def store_fidelity_run(db: Database, study_id: int, *, run_key: str, trial_number: int, factor: float, seed: int,
                       recipe: dict[str, Any], status: str, objectives: list[Any], metrics: dict[str, Any] | None,
                       wall_time_s: float) -> FidelityRunRecord:
    """Store one finished retraining, unless the same run (study, run_key) is stored already (another process
    measuring at once): the stored one wins, and is returned, so every reader ranks the same values."""
    if status not in FIDELITY_RUN_STATUSES:
        raise ValueError(f"fidelity run status {status!r}; allowed: {', '.join(FIDELITY_RUN_STATUSES)}")
    try:
        with db.session() as session:
            record = FidelityRunRecord(study_id=study_id, run_key=run_key, trial_number=trial_number,
                                       factor=float(factor), seed=seed, recipe=dict(recipe), status=status,
                                       objectives=list(objectives), metrics=metrics, wall_time_s=float(wall_time_s))
            session.add(record)
        return record
    except IntegrityError:
        (stored,) = fidelity_runs(db, study_id, [run_key]).values()
        return stored


def fidelity_runs(db: Database, study_id: int, run_keys: list[str] | None = None) -> dict[str, FidelityRunRecord]:
    """run_key -> stored retraining of the study (only those of `run_keys` when given)."""
    with db.session() as session:
        stmt = sa.select(FidelityRunRecord).where(FidelityRunRecord.study_id == study_id)
        if run_keys is not None:
            stmt = stmt.where(FidelityRunRecord.run_key.in_(list(run_keys)))
        return {r.run_key: r for r in session.scalars(stmt.order_by(FidelityRunRecord.id))}
