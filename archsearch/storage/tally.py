"""How many trials a study has run, counted the way `n_trials` counts them.

A study's `n_trials` counts candidates, not attempts: a trial and its retries (a dead worker's trial queued
again, a Ctrl-C'd trial queued again) are one candidate, reported by the status of its latest attempt. A candidate
counts toward n_trials once it has a final status (completed, infeasible, invalid, pruned, stopped, diverged,
duplicate, or failed with no retry left); one whose latest attempt is running or was interrupted (its retry is
queued) is pending. So the count never exceeds n_trials, however many attempts there were: the runner, its
summary and any reader of the tables use this one rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .database import Database
from .models import TrialRecord

PENDING = ("running", "interrupted")


@dataclass(frozen=True)
class Tally:
    by_status: dict[str, int]  # candidates by the status of their latest attempt (pending ones included)
    attempts: int  # rows, retries included

    @property
    def done(self) -> int:
        """Candidates that count toward n_trials."""
        return sum(n for status, n in self.by_status.items() if status not in PENDING)

    @property
    def pending(self) -> int:
        return sum(n for status, n in self.by_status.items() if status in PENDING)


def tally_rows(rows: Iterable[tuple[int, int | None, str]]) -> Tally:
    """(number, retry_of, status) per attempt -> the tally; `retry_of` names the first attempt of a candidate."""
    latest: dict[int, tuple[int, str]] = {}
    attempts = 0
    for number, retry_of, status in rows:
        attempts += 1
        key = number if retry_of is None else retry_of
        if key not in latest or number > latest[key][0]:
            latest[key] = (number, status)
    counts: dict[str, int] = {}
    for _, status in latest.values():
        counts[status] = counts.get(status, 0) + 1
    return Tally(counts, attempts)


def session_tally(session: Session, study_id: int) -> Tally:
    """The tally through any session on the tables (the dashboard's read-only engine as well as a Database)."""
    rows = session.execute(sa.select(TrialRecord.number, TrialRecord.retry_of, TrialRecord.status)
                           .where(TrialRecord.study_id == study_id))
    return tally_rows((number, retry_of, status) for number, retry_of, status in rows)


def study_tally(db: Database, study_id: int) -> Tally:
    with db.session() as session:
        return session_tally(session, study_id)
