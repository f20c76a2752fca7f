"""Optuna's own plotly figures (optuna.visualization) of a study's completed trials, as plain JSON for the page.

Drawn from the same in-memory copy parameter importance uses (OptunaSource.completed_copy: only the trials
archsearch marked completed, so an infeasible candidate's placeholder values never appear). Only the plots whose
traces the served plotly.js bundle draws (scatter) are offered: `plot_parallel_coordinate` needs `parcoords`,
which the basic bundle lacks (archsearch.dashboard.assets says why the basic one), and the Pareto plot is ours
(clickable, with infeasible and failed trials beside the front).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import optuna
from optuna.visualization import plot_optimization_history, plot_slice

from ..errors import UserError
from .optuna_source import frozen_study

PLOTS: dict[str, tuple[str, Callable]] = {
    "history": ("optimisation history", plot_optimization_history),
    "slice": ("slice (each parameter against the objective)", plot_slice),
}


def optuna_figure(study: optuna.Study, plot: str, objective: int, metric: str) -> dict:
    """`plot` (a key of PLOTS) of objective number `objective`, named `metric`, as a plotly JSON dict."""
    if plot not in PLOTS:
        raise UserError(f"query parameter plot={plot!r}: allowed: {', '.join(PLOTS)}")
    draw = PLOTS[plot][1]
    # A multi-objective study needs the objective chosen; one objective is Optuna's own plot (best-value line).
    target = None if len(study.directions) == 1 else (lambda t, i=objective: t.values[i])
    numbers = None
    if plot == "history":
        study, numbers = _numbered_in_order(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "target is specified" and experimental notices: nothing for the reader
        figure = draw(study, target=target, target_name=metric)
    if numbers is not None:
        for trace in figure.data:  # positions back to the trials' own numbers
            trace.x = [numbers[int(x)] for x in trace.x]
    figure.update_layout(template="plotly_white", height=380, margin=dict(l=60, r=20, t=40, b=50),
                         title=dict(font=dict(size=13)))
    return figure.to_plotly_json()


def _numbered_in_order(study: optuna.Study) -> tuple[optuna.Study, list[int]]:
    """The study with its trials numbered 0, 1, ... and the original numbers by position.

    Optuna 5.1's `plot_optimization_history` indexes its list of completed values by trial number, which fails
    (IndexError) as soon as a study holds a trial that did not complete: here, every failed, pruned or never
    trained candidate.
    """
    trials = study.get_trials(deepcopy=False)
    renumbered = []
    for position, trial in enumerate(trials):
        twin = copy.copy(trial)
        twin.number = position
        renumbered.append(twin)
    return frozen_study(study.study_name, list(study.directions), renumbered), [t.number for t in trials]
