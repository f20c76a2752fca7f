"""Read-only views of a study's successive-halving rungs and proxy-fidelity measurements, for readers that hold
their own session (the dashboard's read-only engine). The writes, and the runner's reads, are in `rungs`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .models import FidelityRecord, RungRecord, StudyRecord


@dataclass(frozen=True)
class RungCount:
    """How the trials fared at one rung: every result recorded there, by decision."""
    rung: int  # index, 0 first
    fraction: float | None  # of the recipe's length (None: the study file names no such rung)
    reached: int
    promoted: int
    stopped: int
    final: int  # results at the last rung (trained to the full budget)


@dataclass(frozen=True)
class RungResult:
    rung: int
    fraction: float
    step: int
    objectives: list[Any]
    feasible: bool
    decision: str


@dataclass(frozen=True)
class Fidelity:
    """One `archsearch study fidelity` measurement (columns of archsearch_fidelity)."""
    id: int
    factor: float
    candidates: list[dict[str, Any]]
    noise: dict[str, Any] | None
    stats: dict[str, dict[str, Any]]
    partial: bool = False  # a time limit ended it early: the statistics cover `candidates` of `n_chosen`
    n_chosen: int | None = None


def halving_fractions(session: Session, study_id: int) -> list[float] | None:
    """The study file's `halving.rungs` (fractions of the recipe's length), None when the study did not halve."""
    study_file = session.scalar(sa.select(StudyRecord.study_file).where(StudyRecord.id == study_id))
    halving = study_file.get("halving") if isinstance(study_file, dict) else None
    rungs = halving.get("rungs") if isinstance(halving, dict) else None
    if not isinstance(rungs, list) or not rungs:
        return None
    return [float(r) for r in rungs if isinstance(r, (int, float)) and not isinstance(r, bool)] or None


def rung_counts(session: Session, study_id: int, fractions: list[float] | None = None) -> list[RungCount]:
    """One entry per rung the study planned (`fractions`) or recorded, the first rung first."""
    counts: dict[int, dict[str, int]] = {}
    stmt = (sa.select(RungRecord.rung, RungRecord.decision, sa.func.count())
            .where(RungRecord.study_id == study_id).group_by(RungRecord.rung, RungRecord.decision))
    for rung, decision, n in session.execute(stmt):
        counts.setdefault(rung, {})[decision] = n
    fractions = fractions or []
    out = []
    for rung in range(max([len(fractions) - 1, *counts]) + 1 if (counts or fractions) else 0):
        by = counts.get(rung, {})
        out.append(RungCount(rung, fractions[rung] if rung < len(fractions) else None, sum(by.values()),
                             by.get("promoted", 0), by.get("stopped", 0), by.get("final", 0)))
    return out


def has_rungs(session: Session, study_id: int) -> bool:
    return session.scalar(sa.select(RungRecord.id).where(RungRecord.study_id == study_id).limit(1)) is not None


def halving_stamp(session: Session, study_id: int) -> str:
    """Changes whenever a rung decision or a fidelity measurement is stored (rows are only added, never changed)."""
    rungs = session.execute(sa.select(sa.func.count(), sa.func.max(RungRecord.id))
                            .where(RungRecord.study_id == study_id)).one()
    fidelity = session.scalar(sa.select(sa.func.max(FidelityRecord.id)).where(FidelityRecord.study_id == study_id))
    return f"rungs:{rungs[0]}:{rungs[1]};fidelity:{fidelity}"


def trial_rungs(session: Session, study_id: int, numbers: list[int]) -> dict[int, list[RungResult]]:
    """Trial number (the first attempt's, as the runner stores it) -> its results at each rung, the first first."""
    if not numbers:
        return {}
    out: dict[int, list[RungResult]] = {}
    stmt = (sa.select(RungRecord).where(RungRecord.study_id == study_id, RungRecord.trial_number.in_(numbers))
            .order_by(RungRecord.trial_number, RungRecord.rung))
    for r in session.scalars(stmt):
        out.setdefault(r.trial_number, []).append(
            RungResult(r.rung, r.fraction, r.step, list(r.objectives or []), bool(r.feasible), r.decision))
    return out


def fidelity_measurements(session: Session, study_id: int) -> list[Fidelity]:
    """The study's fidelity measurements, the latest first."""
    stmt = sa.select(FidelityRecord).where(FidelityRecord.study_id == study_id).order_by(FidelityRecord.id.desc())
    return [Fidelity(r.id, r.factor, [c for c in (r.candidates or []) if isinstance(c, dict)],
                     r.noise if isinstance(r.noise, dict) else None,
                     {m: s for m, s in (r.stats or {}).items() if isinstance(s, dict)}, bool(r.partial),
                     r.n_chosen)
            for r in session.scalars(stmt)]
