"""What a plain Optuna tool sees of an archsearch trial: user attributes, intermediate values and constraints.

Our own tables hold the full record; these copies are for `optuna.load_study` and optuna-dashboard, which read
only Optuna's tables:
- user attributes: `pattern` (compact) and `pattern_expanded`, `n_params` (the trained model), `target` (the
  judged model's name and sizes, when the study names one), `memory_bytes` (analytic), `feasible`, `status`
  (archsearch's), and `metrics` (the trained result's main figures);
- intermediate values: the learning curve, one value per evaluation (`curve_metric` names it), reported whether
  or not a pruner runs; multi-objective studies too (Optuna's `Trial.report` refuses them, the storage does not);
- constraints: Optuna's named `constraints:NAME` (what its samplers read) and the list-style `constraints`
  attribute older readers know (optuna-dashboard 0.21 shows only that one), in `constraint_names` order.
  Both hold the same values, so feasibility (every value <= 0) is unchanged; Optuna's `trial.constraints` shows
  each value twice (the list's under "0", "1", ...). A study begun without the list goes on without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import optuna

LIST_CONSTRAINTS_KEY = "constraints"  # optuna.study._constrained_optimization._CONSTRAINTS_KEY (pre-5.0 format)
MAIN_METRICS = ("val_loss", "loss", "accuracy", "val_ppl", "bits_per_byte", "kl_to_teacher")
CURVE_FALLBACK = ("val_loss", "loss", "train_loss")


def _study_has_list(trial: optuna.Trial) -> bool:
    """False for a study whose first trial was stored before the list-style copy existed: Optuna reads both
    forms into one `trial.constraints`, and the GP sampler refuses trials whose constraint names differ."""
    storage = trial.storage
    first = storage.get_trial_id_from_study_id_trial_number(trial.study._study_id, 0)
    if first == trial._trial_id:
        return True
    attrs = storage.get_trial_system_attrs(first)
    named = any(k.startswith(LIST_CONSTRAINTS_KEY + ":") for k in attrs)
    return LIST_CONSTRAINTS_KEY in attrs or not named


def set_constraints(trial: optuna.Trial, constraints: dict[str, float]) -> None:
    """Each constraint under Optuna's name `constraints:KEY`, and all of them as the list-style attribute."""
    for key, value in constraints.items():
        trial.set_constraint(key, value)
    trial.set_user_attr("constraint_names", list(constraints))
    if _study_has_list(trial):
        trial.storage.set_trial_system_attr(trial._trial_id, LIST_CONSTRAINTS_KEY,
                                            [float(v) for v in constraints.values()])


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, float) and math.isfinite(value) else (
        None if isinstance(value, float) else value)


def set_candidate(trial: optuna.Trial, spec_fields: dict[str, Any], analytic: dict[str, float]) -> None:
    """The candidate's pattern and sizes, as soon as it is known (before any training)."""
    attrs = {"pattern": spec_fields.get("pattern_compact"), "pattern_expanded": spec_fields.get("pattern"),
             "n_params": spec_fields.get("n_params"), "memory_bytes": _plain(analytic.get("memory_bytes")),
             "feasible": spec_fields.get("fits")}
    target = spec_fields.get("target")
    if target:
        attrs["target"] = {k: _plain(v) for k, v in target.items() if k not in ("spec", "spec_hash")}
    for key, value in attrs.items():
        if value is not None:
            trial.set_user_attr(key, value)


def set_outcome(trial: optuna.Trial, status: str, metrics: dict[str, Any] | None) -> None:
    """archsearch's status of the finished trial and its main trained metrics (none for an untrained trial)."""
    trial.set_user_attr("status", status)
    main = {k: _plain(v) for k, v in (metrics or {}).items()
            if k in MAIN_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    if main:
        trial.set_user_attr("metrics", main)


class CurveReporter:
    """Reports each evaluation's value as the trial's intermediate value at that step.

    The metric is the first of `preferred` (the objectives' metrics, then the usual losses) that the first
    evaluation holds, kept for the whole curve. A step is reported once; non-finite values are skipped.
    """

    def __init__(self, trial: optuna.Trial, preferred: Iterable[str]):
        self.trial = trial
        self.preferred = list(dict.fromkeys([*preferred, *CURVE_FALLBACK]))
        self.metric: str | None = None
        self.steps: set[int] = set()
        self.single = len(trial.study.directions) == 1

    def __call__(self, step: int, point: dict[str, float]) -> None:
        if self.metric is None:
            self.metric = next((m for m in self.preferred if m in point), None)
            if self.metric is None:
                return
            self.trial.set_user_attr("curve_metric", self.metric)
        value = point.get(self.metric)
        if value is None or not math.isfinite(value) or step < 0 or step in self.steps:
            return
        self.steps.add(step)
        if self.single:
            self.trial.report(value, step)  # what a pruner reads
        else:
            self.trial.storage.set_trial_intermediate_value(self.trial._trial_id, step, value)
