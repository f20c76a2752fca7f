"""Reading and writing our rows: one function per thing a runner or a command does."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import UserError
from .database import Database
from .models import StudyRecord, TrialRecord, utcnow


class StudyMismatchError(UserError):
    """A study of that name exists with another search space or other objectives."""


def study_by_name(db: Database, name: str) -> StudyRecord | None:
    with db.session() as session:
        return session.scalar(sa.select(StudyRecord).where(StudyRecord.name == name))


def check_study_matches(existing: StudyRecord, space_hash: str, objectives: list[dict]) -> None:
    """Refuse to add trials of another space to a stored study (nothing is written when this raises)."""
    if existing.space_hash != space_hash:
        raise StudyMismatchError(
            f"study {existing.name!r} already exists with a different search space or base spec "
            f"(stored hash {existing.space_hash}, this file {space_hash}); give the study another `name:`, or "
            f"use another storage")
    if existing.objectives != objectives:
        raise StudyMismatchError(f"study {existing.name!r} already exists with objectives {existing.objectives}; "
                                 f"this file has {objectives}")


def ensure_study(db: Database, *, name: str, space_hash: str, study_file: dict, objectives: list[dict],
                 n_trials_target: int | None, archsearch_version: str) -> StudyRecord:
    """The stored study of that name, created if new; raises StudyMismatchError if it differs."""
    with db.session() as session:
        existing = session.scalar(sa.select(StudyRecord).where(StudyRecord.name == name))
        if existing is not None:
            check_study_matches(existing, space_hash, objectives)
            if n_trials_target is not None:
                existing.n_trials_target = n_trials_target
            stored = existing.study_file or {}
            if stored.get("reference") != study_file.get("reference"):
                # outside the identity: the reference the latest run measured (a parent measured again) replaces
                # the first one; a new dict, so that the JSON column is seen to change
                existing.study_file = {**stored, "reference": study_file.get("reference")}
            return existing
    try:
        with db.session() as session:
            record = StudyRecord(name=name, space_hash=space_hash, study_file=study_file, objectives=objectives,
                                 n_trials_target=n_trials_target, slots_taken=0,
                                 archsearch_version=archsearch_version)
            session.add(record)
        return record
    except sa.exc.IntegrityError:  # another worker created it between our look and our insert
        return ensure_study(db, name=name, space_hash=space_hash, study_file=study_file, objectives=objectives,
                            n_trials_target=n_trials_target, archsearch_version=archsearch_version)


def set_optuna_study_id(db: Database, study_id: int, optuna_study_id: int) -> None:
    with db.session() as session:
        session.execute(sa.update(StudyRecord).where(StudyRecord.id == study_id)
                        .values(optuna_study_id=optuna_study_id))


def set_identity(db: Database, study_id: int, identity: dict) -> None:
    """Store a study's identity (archsearch.studies.identity) once: at creation, or on the first rerun of a study
    created before identities were stored."""
    with db.session() as session:  # read, not `IS NULL`: a JSON column may hold a JSON null rather than SQL NULL
        record = session.get(StudyRecord, study_id)
        if record is not None and record.identity is None:
            record.identity = identity


def first_decided_with_key(db: Database, study_id: int, candidate_key: str) -> TrialRecord | None:
    """The trial whose outcome a repeat of candidate `candidate_key` reuses instead of training: the earliest
    completed one, else the earliest stopped by the dominance stop (dominated by completed trials, which only grow
    in number, so a repeat would be stopped again). A stop by a successive-halving rung (`rung` set) or a pruner is
    not reused: it ranked the trial against the results of its time, and a repeat may rank otherwise."""
    reusable = sa.or_(TrialRecord.status == "completed",
                      sa.and_(TrialRecord.status == "stopped", TrialRecord.rung.is_(None)))
    with db.session() as session:
        return session.scalar(sa.select(TrialRecord).where(
            TrialRecord.study_id == study_id, TrialRecord.candidate_key == candidate_key, reusable)
            .order_by((TrialRecord.status != "completed"), TrialRecord.number).limit(1))


def duplicates_by_original(db: Database, study_id: int) -> dict[int, list[int]]:
    """{number of a completed trial: numbers of the trials recorded as its duplicates}."""
    with db.session() as session:
        rows = session.execute(sa.select(TrialRecord.duplicate_of, TrialRecord.number).where(
            TrialRecord.study_id == study_id, TrialRecord.status == "duplicate")
            .order_by(TrialRecord.number)).all()
    out: dict[int, list[int]] = {}
    for original, number in rows:
        out.setdefault(original, []).append(number)
    return out


def take_slot(db: Database, study_id: int, target: int) -> bool:
    """Atomically reserve one new trial of `target`; False when all are taken (one UPDATE, so no two workers
    can both get the last slot)."""
    with db.session() as session:
        result = session.execute(sa.update(StudyRecord)
                                 .where(StudyRecord.id == study_id, StudyRecord.slots_taken < target)
                                 .values(slots_taken=StudyRecord.slots_taken + 1))
        return result.rowcount == 1


def release_slot(db: Database, study_id: int) -> None:
    with db.session() as session:
        session.execute(sa.update(StudyRecord).where(StudyRecord.id == study_id, StudyRecord.slots_taken > 0)
                        .values(slots_taken=StudyRecord.slots_taken - 1))


def slots_taken(db: Database, study_id: int) -> int:
    with db.session() as session:
        return session.scalar(sa.select(StudyRecord.slots_taken).where(StudyRecord.id == study_id)) or 0


def start_trial(db: Database, *, study_id: int, optuna_trial_id: int, number: int, params: dict,
                retry_of: int | None, worker: str) -> int:
    with db.session() as session:
        record = TrialRecord(study_id=study_id, optuna_trial_id=optuna_trial_id, number=number, retry_of=retry_of,
                             status="running", params=params, worker=worker)
        session.add(record)
        session.flush()
        return record.id


def update_trial(db: Database, trial_row_id: int, *, finished: bool = True, **fields: Any) -> None:
    if finished:
        fields.setdefault("finished_at", utcnow())
    with db.session() as session:
        session.execute(sa.update(TrialRecord).where(TrialRecord.id == trial_row_id).values(**fields))


def mark_lost_trials(db: Database, study_id: int, failed_optuna_ids: set[int]) -> int:
    """Rows still `running` whose Optuna trial has failed (its worker's heartbeat stopped) become `failed`."""
    if not failed_optuna_ids:
        return 0
    with db.session() as session:
        result = session.execute(
            sa.update(TrialRecord)
            .where(TrialRecord.study_id == study_id, TrialRecord.status == "running",
                   TrialRecord.optuna_trial_id.in_(failed_optuna_ids))
            .values(status="failed", error="worker lost: its heartbeat stopped; the trial is queued again",
                    finished_at=utcnow()))
        return result.rowcount


def trials_of(db: Database, study_id: int, statuses: tuple[str, ...] | None = None) -> list[TrialRecord]:
    with db.session() as session:
        query = sa.select(TrialRecord).where(TrialRecord.study_id == study_id).order_by(TrialRecord.number)
        if statuses:
            query = query.where(TrialRecord.status.in_(statuses))
        return list(session.scalars(query))


def status_counts(db: Database, study_id: int) -> dict[str, int]:
    with db.session() as session:
        rows = session.execute(sa.select(TrialRecord.status, sa.func.count()).where(TrialRecord.study_id == study_id)
                               .group_by(TrialRecord.status)).all()
    return {status: count for status, count in rows}


def completed_summaries(db: Database, study_id: int) -> list[Any]:
    """Completed trials' small columns only (number, objectives, pattern, size, params), for rankings."""
    with db.session() as session:
        return list(session.execute(
            sa.select(TrialRecord.number, TrialRecord.objectives, TrialRecord.pattern_compact, TrialRecord.n_params,
                      TrialRecord.params, TrialRecord.spec_hash, TrialRecord.target,
                      TrialRecord.candidate_key)
            .where(TrialRecord.study_id == study_id, TrialRecord.status == "completed")
            .order_by(TrialRecord.number)))


def list_studies(db: Database) -> list[dict]:
    """Each stored study with its trial counts per status."""
    with db.session() as session:
        studies = list(session.scalars(sa.select(StudyRecord).order_by(StudyRecord.id)))
        counts = session.execute(sa.select(TrialRecord.study_id, TrialRecord.status, sa.func.count())
                                 .group_by(TrialRecord.study_id, TrialRecord.status)).all()
    by_study: dict[int, dict[str, int]] = {}
    for study_id, status, count in counts:
        by_study.setdefault(study_id, {})[status] = count
    return [{"name": s.name, "objectives": s.objectives, "created_at": s.created_at.isoformat(timespec="seconds"),
             "n_trials_target": s.n_trials_target, "counts": by_study.get(s.id, {})} for s in studies]
