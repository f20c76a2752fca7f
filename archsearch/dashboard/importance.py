"""Parameter importance on a loaded Optuna study, guarded: too few trials gives a reason, not an exception.

PED-ANOVA is Optuna's evaluator that needs no scikit-learn (the default fANOVA does).
"""

from __future__ import annotations

from dataclasses import dataclass

import warnings

import optuna
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

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
