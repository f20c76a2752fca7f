"""Optuna samplers and pruners from a study file's `sampler:` / `pruner:` sections.

The file names a type and its constructor options; this module turns that into the object once, checking every
option against the constructor's signature. Code that runs a study may also pass its own sampler object.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from typing import Any

from ..errors import UserError
from .space import SearchSpace
from .study_file import PrunerConfig, SamplerConfig


def _classes():
    import optuna

    samplers = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
                "gp": optuna.samplers.GPSampler, "random": optuna.samplers.RandomSampler,
                "grid": optuna.samplers.GridSampler, "qmc": optuna.samplers.QMCSampler,
                "cmaes": optuna.samplers.CmaEsSampler}
    pruners = {"median": optuna.pruners.MedianPruner, "percentile": optuna.pruners.PercentilePruner,
               "hyperband": optuna.pruners.HyperbandPruner,
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
               "threshold": optuna.pruners.ThresholdPruner, "patient": optuna.pruners.PatientPruner,
               "nop": optuna.pruners.NopPruner}
    return samplers, pruners


def _construct(cls, options: dict[str, Any], what: str):
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UserError(f"{what}: {cls.__name__} has no option {', '.join(unknown)}; options: "
                        f"{', '.join(sorted(accepted - {'constraints_func', 'search_space'}))}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings (GP, QMC) are not the user's problem
            return cls(**options)
    except (TypeError, ValueError) as err:
        raise UserError(f"{what}: {cls.__name__}({options}) failed: {err}") from None


def build_sampler(config: SamplerConfig, space: SearchSpace, seed: int, n_objectives: int):
    samplers, _ = _classes()
    options = dict(config.model_extra or {})
    cls = samplers[config.type]
    if config.type == "cmaes" and n_objectives > 1:
        raise UserError("sampler: cmaes handles one objective only; for several use nsga2, tpe, gp or random")
    needs = {"gp": ("scipy", "torch"), "qmc": ("scipy",), "cmaes": ("cmaes",)}.get(config.type, ())
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"sampler: {config.type} needs {', '.join(missing)}, which is not installed "
                        f"(pip install {' '.join(missing)}); tpe, nsga2, random and grid need nothing more")
    if "seed" in inspect.signature(cls.__init__).parameters:
        options.setdefault("seed", seed)
    if config.type == "grid":
        options["search_space"] = space.grid()
    return _construct(cls, options, "sampler")


def build_pruner(config: PrunerConfig | None):
    if config is None:
        return None
    _, pruners = _classes()
    options = dict(config.model_extra or {})
    if config.type == "patient":
        inner = options.pop("wrapped_pruner", {"type": "median"})
        options["wrapped_pruner"] = build_pruner(PrunerConfig.model_validate(inner))
    return _construct(pruners[config.type], options, "pruner")
