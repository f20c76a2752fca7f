"""Parameter importance on a loaded Optuna study, guarded: too few trials gives a reason, not an exception.

PED-ANOVA is Optuna's evaluator that needs no scikit-learn (the default fANOVA does).

`ImportanceCache` is what the server asks: one load of the study's completed trials per change of the study
(its stamp), importance for every objective from that one load, and one computation shared by every request
that asks while it runs.
"""

from __future__ import annotations

import logging
import threading
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
import sqlalchemy as sa
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

from ..errors import first_line

if TYPE_CHECKING:
    from .optuna_source import OptunaSource
    from .queries import Repository

log = logging.getLogger("archsearch.dashboard")

MIN_TRIALS = 5  # PED-ANOVA compares the best quantile against all; fewer trials give noise, not importance


@dataclass(frozen=True)
class Importance:
    values: dict[str, float]  # empty when `reason` says why none could be computed
    reason: str = ""  # why there are no values, or a caveat about the values shown


def too_few(n_completed: int) -> Importance | None:
    """The answer when `n_completed` trials are too few to compute importance from; None when enough."""
    if n_completed >= MIN_TRIALS:
        return None
    return Importance({}, f"parameter importance needs at least {MIN_TRIALS} completed trials with parameters; "
                          f"this study has {n_completed}")


def param_importance(study: optuna.Study, objective_index: int = 0) -> Importance:
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                if t.params]
    if (answer := too_few(len(complete))) is not None:
        return answer
    # PED-ANOVA explains low target values; a maximised objective is negated so "important" means the same.
    sign = -1.0 if study.directions[objective_index] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                           target=lambda t: sign * t.values[objective_index])
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        # Optuna refuses e.g. when every trial shares one value or a parameter has a single value.
        return Importance({}, f"parameter importance could not be computed: {err}")
    # Optuna warns on any custom target that it explains low values (the sign above sees to that); what else
    # it says (a parameter value seen by fewer than 2 trials) is a caveat the page shows beside the bars.
    sparse = sorted({str(w.message).split("`")[1] for w in caught if "less than 2 trials" in str(w.message)})
    caveat = (f"few trials for some values of {', '.join(sparse)}: their importance may be inaccurate"
              if sparse else "")
    return Importance({k: float(v) for k, v in values.items()}, caveat)


def all_param_importances(study: optuna.Study) -> list[Importance]:
    """`param_importance` for each of the study's objectives, in order."""
    return [param_importance(study, i) for i in range(len(study.directions))]


@dataclass
class _Entry:
    stamp: str
    answer: Future  # list[Importance], one per objective


class ImportanceCache:
    """Parameter importance per study, for every objective at once, recomputed only when the study changes.

    The first request after a change computes (in its own thread: the endpoint is synchronous, so Starlette
    runs it in its threadpool, off the event loop); a request that arrives meanwhile waits for that same answer
    instead of starting another. The answer is kept for the stamp it was computed at, so a computation whose
    page has gone is not wasted: the next page reads it.
    """

    def __init__(self, repo: Repository, source: OptunaSource):
        self.repo, self.source = repo, source
        self._cache: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def __call__(self, study_id: int, objective: int) -> Importance:
        return self.all(study_id)[objective]

    def all(self, study_id: int) -> list[Importance]:
        stamp = self.repo.stamp(study_id)
        with self._lock:
            entry = self._cache.get(study_id)
            owner = entry is None or entry.stamp != stamp
            if owner:
                entry = self._cache[study_id] = _Entry(stamp, Future())
        if owner:
            try:
                entry.answer.set_result(self._compute(study_id))
            except BaseException as err:
                entry.answer.set_exception(err)
                with self._lock:  # not kept: the next request tries again
                    if self._cache.get(study_id) is entry:
                        del self._cache[study_id]
        return entry.answer.result()

    def _compute(self, study_id: int) -> list[Importance]:
        study = self.repo.study(study_id)
        n = len(study.objectives)
        completed = self.repo.completed_optuna_ids(study_id)
        if (answer := too_few(len(completed))) is not None:  # said without a look at Optuna's tables
            return [answer] * n
        try:
            copy = self.source.completed_copy(study.name, completed)
        except (KeyError, ValueError, optuna.exceptions.OptunaError, sa.exc.SQLAlchemyError) as err:
            reason = first_line(err)
            log.warning("importance for study %s: Optuna's record could not be read: %s", study_id, reason)
            return [Importance({}, f"Optuna's record of this study could not be read ({reason})")] * n
        answers = all_param_importances(copy)
        return (answers + [Importance({}, "Optuna's record of this study has fewer objectives")] * n)[:n]
