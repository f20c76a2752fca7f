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


def _option_types(cls) -> dict[str, Any]:
    """A pydantic TypeAdapter per constructor option, from its annotation; None where the annotation names a type
    a study file cannot write (a callable, an Optuna object), so such an option is refused, not passed on."""
    import collections.abc
    import sys
    import typing

    from pydantic import ConfigDict, TypeAdapter

    namespace = {**vars(typing), **vars(collections.abc), **vars(sys.modules[cls.__module__])}
    out: dict[str, Any] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation
        try:
            hint = eval(annotation, namespace) if isinstance(annotation, str) else annotation  # noqa: S307 - Optuna's own annotations
            out[name] = None if annotation is parameter.empty else TypeAdapter(
                hint, config=ConfigDict(arbitrary_types_allowed=True))
        except Exception:  # an annotation naming a type only imported for type checkers: not settable from YAML
            out[name] = None
    return out


def option_problems(cls, options: dict[str, Any]) -> list[tuple[str, str]]:
    """(option, what is wrong) for every option `cls` does not take or that has the wrong type (strictly: `many`
    is not an int, nor is 5.0 or true), without constructing anything."""
    from pydantic import ValidationError

    types = _option_types(cls)
    settable = sorted(name for name in types if name not in ("constraints_func", "search_space"))
    problems = []
    for name, value in options.items():
        if name not in types:
            problems.append((name, f"{cls.__name__} has no option {name!r}; options: {', '.join(settable)}"))
            continue
        adapter = types[name]
        if adapter is None:
            problems.append((name, f"{cls.__name__} option {name!r} takes a Python object, which a study file "
                                   "cannot give"))
            continue
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as err:
            expected = inspect.signature(cls.__init__).parameters[name].annotation
            expected = getattr(expected, "__name__", None) if isinstance(expected, type) else str(expected)
            problems.append((name, f"{cls.__name__} option {name!r}: {err.errors()[0]['msg']} (got {value!r:.60}); "
                                   f"allowed: {expected}"))
    return problems


def _construct(cls, options: dict[str, Any], what: str):
    problems = option_problems(cls, {k: v for k, v in options.items() if k != "search_space"})
    if problems:
        raise UserError(f"{what}: " + "; ".join(message for _, message in problems))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings (GP, QMC) are not the user's problem
            return cls(**options)
    except (TypeError, ValueError, OverflowError) as err:
        raise UserError(f"{what}: {cls.__name__}({options}) failed: {err}"[:300]) from None


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
