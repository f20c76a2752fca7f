"""Optuna's view of a study, read on a read-only engine: the completed trials that parameter importance needs.

The copy handed out is an in-memory study holding only the trials archsearch marked `completed`: Optuna
also holds infeasible candidates (with the figures that taught the sampler), which must not count as results.

`completed_trials` reads Optuna's tables with three plain queries (trials, their parameters, their values) and
builds the `FrozenTrial`s itself, each distinct distribution parsed once. Optuna's own storage
(`completed_trials_reference`, the reference the tests compare against) loads every trial through its ORM with
attributes and intermediate values importance never reads: 1.4 s for 6,923 trials, against about 0.1 s here.
Only columns of Optuna's schema that have been stable since its v3.0 tables are read.
"""

from __future__ import annotations

import copy
import threading
import warnings
from collections.abc import Container, Iterable
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from .readonly import engine_kwargs, parse_existing

# Optuna's tables, only the columns read here (optuna/storages/_rdb/models.py defines them).
_studies = sa.table("studies", sa.column("study_id"), sa.column("study_name"))
_directions = sa.table("study_directions", sa.column("study_id"), sa.column("objective"), sa.column("direction"))
_trials = sa.table("trials", sa.column("trial_id"), sa.column("number"), sa.column("study_id"), sa.column("state"),
                   sa.column("datetime_start", sa.DateTime), sa.column("datetime_complete", sa.DateTime))
_params = sa.table("trial_params", sa.column("param_id"), sa.column("trial_id"), sa.column("param_name"),
                   sa.column("param_value", sa.Float), sa.column("distribution_json"))
_values = sa.table("trial_values", sa.column("trial_id"), sa.column("objective"), sa.column("value", sa.Float),
                   sa.column("value_type"))


def _name(stored) -> str:
    """An enum column as its member name: SQLite gives the string, a PostgreSQL enum may give either."""
    return getattr(stored, "name", None) or str(stored).rsplit(".", 1)[-1]


def _value(value: float | None, value_type) -> float:
    kind = _name(value_type)
    if kind == "INF_POS":
        return float("inf")
    if kind == "INF_NEG":
        return float("-inf")
    if value is None:
        raise ValueError(f"a finite trial value stored as NULL (type {kind})")
    return float(value)


class _FrozenStorage(BaseStorage):
    """Optuna's storage interface over one study's trials held in memory, read-only.

    `study.add_trials` into Optuna's in-memory storage deep-copies every trial (0.4 s for 6,923 trials); these
    trials are built for this copy alone, so they are handed out as they are, and every write is refused.
    """

    _ID = 0

    def __init__(self, name: str, directions: list[StudyDirection], trials: list[FrozenTrial]):
        self._name, self._directions, self._trials = name, list(directions), list(trials)

    def _check(self, study_id: int) -> None:
        if study_id != self._ID:
            raise KeyError(f"no study with id {study_id}")

    # reads
    def get_study_id_from_name(self, study_name: str) -> int:
        if study_name != self._name:
            raise KeyError(f"no study named {study_name!r}")
        return self._ID

    def get_study_name_from_id(self, study_id: int) -> str:
        self._check(study_id)
        return self._name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        self._check(study_id)
        return list(self._directions)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        self._check(study_id)
        return {}

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        self._check(study_id)
        return {}

    def get_trial(self, trial_id: int) -> FrozenTrial:
        for trial in self._trials:
            if trial._trial_id == trial_id:
                return trial
        raise KeyError(f"no trial with id {trial_id}")

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        self._check(study_id)
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    # writes, and the listing of studies (this storage holds one): refused
    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the dashboard's copy of a study is read-only and holds one study")

    create_new_study = delete_study = set_study_user_attr = set_study_system_attr = get_all_studies = _refuse
    create_new_trial = set_trial_param = set_trial_state_values = set_trial_intermediate_value = _refuse
    set_trial_user_attr = set_trial_system_attr = _refuse


def frozen_study(name: str, directions: list[StudyDirection], trials: list[FrozenTrial]) -> optuna.Study:
    """A read-only `optuna.Study` over `trials` (held, not copied), for Optuna's analysis functions."""
    return optuna.Study(name, storage=_FrozenStorage(name, directions, trials),
                        sampler=optuna.samplers.RandomSampler(seed=0))


class OptunaSource:
    def __init__(self, url: str, engine: sa.Engine | None = None):
        self.url = url
        self.engine = engine  # read-only; `completed_trials` reads through it
        self._storage: optuna.storages.RDBStorage | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ fast path
    def completed_trials(self, study_name: str, optuna_trial_ids: Iterable[int]
                         ) -> tuple[list[StudyDirection], list[FrozenTrial]]:
        """Directions and the COMPLETE trials among `optuna_trial_ids`, by trial number, as Optuna would give them
        (params in the order they were suggested, values, start and end times; no attributes)."""
        keep = set(optuna_trial_ids)
        if self.engine is None:
            raise RuntimeError("OptunaSource needs an engine to read Optuna's tables")
        with self.engine.connect() as conn:
            study_id = conn.execute(sa.select(_studies.c.study_id)
                                    .where(_studies.c.study_name == study_name)).scalar_one_or_none()
            if study_id is None:
                raise KeyError(f"no Optuna study named {study_name!r}")
            directions = [StudyDirection[_name(d)] for (d,) in conn.execute(
                sa.select(_directions.c.direction).where(_directions.c.study_id == study_id)
                .order_by(_directions.c.objective))]
            # The state is compared as text: a PostgreSQL enum does not compare with a bound VARCHAR.
            complete = sa.and_(_trials.c.study_id == study_id,
                               sa.cast(_trials.c.state, sa.String) == TrialState.COMPLETE.name)
            heads = {tid: (number, start, end) for tid, number, start, end in conn.execute(
                sa.select(_trials.c.trial_id, _trials.c.number, _trials.c.datetime_start,
                          _trials.c.datetime_complete).where(complete)) if tid in keep}
            params: dict[int, list[tuple[str, float, str]]] = {tid: [] for tid in heads}
            for tid, name, value, dist in conn.execute(
                    sa.select(_params.c.trial_id, _params.c.param_name, _params.c.param_value,
                              _params.c.distribution_json)
                    .select_from(_params.join(_trials, _trials.c.trial_id == _params.c.trial_id))
                    .where(complete).order_by(_params.c.param_id)):
                if tid in params:
                    params[tid].append((name, value, dist))
            values: dict[int, list[float]] = {tid: [0.0] * len(directions) for tid in heads}
            for tid, objective, value, value_type in conn.execute(
                    sa.select(_values.c.trial_id, _values.c.objective, _values.c.value, _values.c.value_type)
                    .select_from(_values.join(_trials, _trials.c.trial_id == _values.c.trial_id))
                    .where(complete)):
                if tid in values:
                    values[tid][objective] = _value(value, value_type)
        parsed: dict[str, BaseDistribution] = {}  # one parse per distinct distribution, not one per trial
        trials = []
        for tid, (number, start, end) in sorted(heads.items(), key=lambda item: item[1][0]):
            dists = {}
            for name, _, d in params[tid]:
                if d not in parsed:
                    parsed[d] = json_to_distribution(d)
                dists[name] = parsed[d]
            trials.append(FrozenTrial(
                number=number, state=TrialState.COMPLETE, value=None, values=values[tid], datetime_start=start,
                datetime_complete=end, params={name: dists[name].to_external_repr(v) for name, v, _ in params[tid]},
                distributions=dists, user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=tid))
        return directions, trials

    def completed_copy(self, study_name: str, optuna_trial_ids: Iterable[int]) -> optuna.Study:
        """An in-memory, read-only study of the completed trials (see the module's docstring)."""
        directions, trials = self.completed_trials(study_name, optuna_trial_ids)
        return frozen_study(study_name, directions, trials)

    # ------------------------------------------------------------------------- reference: Optuna's storage
    def _rdb(self) -> optuna.storages.RDBStorage:
        with self._lock:
            if self._storage is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    # Both skips avoid any write: the tables exist, and the schema check would stamp a version.
                    url = parse_existing(self.url).render_as_string(hide_password=False)
                    self._storage = optuna.storages.RDBStorage(
                        url, engine_kwargs=engine_kwargs(self.url), skip_compatibility_check=True,
                        skip_table_creation=True)
            return self._storage

    def completed_trials_reference(self, study_name: str, optuna_trial_ids: Iterable[int]
                                   ) -> tuple[list[StudyDirection], list[FrozenTrial]]:
        """What `completed_trials` returns, read through Optuna's own storage (slow; for the parity test)."""
        storage = self._rdb()
        study_id = storage.get_study_id_from_name(study_name)
        keep = set(optuna_trial_ids)
        trials = [t for t in storage.get_all_trials(study_id, deepcopy=False)
                  if t._trial_id in keep and t.state == TrialState.COMPLETE]
        return list(storage.get_study_directions(study_id)), sorted(trials, key=lambda t: t.number)

