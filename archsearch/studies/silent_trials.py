"""Trials that died before their first heartbeat: found and handed to Optuna's own stale-trial path.

Optuna starts a trial's heartbeat thread just after `ask()` creates the trial. A worker killed (kill -9) in
between leaves a RUNNING trial with no heartbeat row, which Optuna never considers stale, so every later run
would wait on it forever. A RUNNING trial that has no heartbeat `grace_s` after it started cannot have a live
worker (the thread would have beaten); writing one heartbeat for it lets Optuna's heartbeat check fail it once
that heartbeat is itself stale, and its retry callback queue it again, like any other dead worker's trial.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from optuna.trial import TrialState


def adopt_silent_trials(study, db, grace_s: float) -> list[int]:
    """Give a heartbeat to each RUNNING trial of `study` older than `grace_s` that never had one; their numbers."""
    storage = study._storage
    if not hasattr(storage, "record_heartbeat"):
        return []
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    now = datetime.now()
    old = {t._trial_id: t.number for t in running
           if t.datetime_start is not None and now - t.datetime_start > timedelta(seconds=grace_s)}
    if not old:
        return []
    with db.session() as session:  # Optuna's heartbeat table, in the same database as ours
        beating = set(session.scalars(sa.text("SELECT trial_id FROM trial_heartbeats WHERE trial_id IN :ids")
                                      .bindparams(sa.bindparam("ids", expanding=True)), {"ids": list(old)}))
    silent = [trial_id for trial_id in old if trial_id not in beating]
    for trial_id in silent:
        storage.record_heartbeat(trial_id)
    return [old[trial_id] for trial_id in silent]
