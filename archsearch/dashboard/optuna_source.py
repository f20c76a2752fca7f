"""Optuna's view of a study, read through its own RDB storage on a read-only engine.

The copy handed out is an in-memory study holding only the trials archsearch marked `completed`: Optuna
also holds infeasible candidates (with the figures that taught the sampler), which must not count as results.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable

import optuna

from .readonly import driver_url, engine_kwargs, parse_existing


class OptunaSource:
    def __init__(self, url: str):
        self.url = url
        self._storage: optuna.storages.RDBStorage | None = None
        self._lock = threading.Lock()

    def _rdb(self) -> optuna.storages.RDBStorage:
        with self._lock:
            if self._storage is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Both skips avoid any write: the tables exist, and the schema check would stamp a version.
                    url = driver_url(parse_existing(self.url)).render_as_string(hide_password=False)
                    self._storage = optuna.storages.RDBStorage(
                        url, engine_kwargs=engine_kwargs(self.url), skip_compatibility_check=True,
                        skip_table_creation=True)
            return self._storage

    def completed_copy(self, study_name: str, optuna_trial_ids: Iterable[int]) -> optuna.Study:
        storage = self._rdb()
        study_id = storage.get_study_id_from_name(study_name)
        keep = set(optuna_trial_ids)
        trials = [t for t in storage.get_all_trials(study_id, deepcopy=False)
                  if t._trial_id in keep and t.state == optuna.trial.TrialState.COMPLETE]
        copy = optuna.create_study(directions=storage.get_study_directions(study_id))
        copy.add_trials(trials)
        return copy
