"""Spec <-> Hugging Face config dict, for the NemotronH, Mamba2, Gemma2, Qwen3, Qwen2 and Llama families."""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

from ..spec import ModelSpec, parse_spec
from ..spec.errors import SpecError, SpecIssue
from . import mamba2, nemotron_h, transformer
from ._common import Checker

# Export tries families in this order and takes the first that expresses the spec exactly (a pure Mamba-2
# spec is a Mamba2 config before it is a NemotronH one).
FAMILIES = ("mamba2", "nemotron_h", "gemma2", "qwen3", "qwen2", "llama")

_EXPORTERS: dict[str, Callable[[ModelSpec], tuple[dict[str, Any], Checker]]] = {
    "nemotron_h": nemotron_h.export_spec,
    "mamba2": mamba2.export_spec,
    **{key: (lambda spec, f=fam: transformer.export_spec(spec, f)) for key, fam in transformer.FAMILIES.items()},
}


class NotExpressibleError(SpecError):
    """The spec has features the chosen Hugging Face family cannot hold; `issues` lists every one."""

    def __init__(self, spec_name: str, family: str, issues: list[SpecIssue], note: str = ""):
        self.family = family
        super().__init__(issues, f"{spec_name!r} as a {family} config{note}")
        head = (f"spec {spec_name!r} cannot be written as a Hugging Face {family} config{note}: "
                f"{len(issues)} feature(s) not expressible")
        self.args = ("\n".join([head] + [f"  - {issue}" for issue in issues]),)

    def __str__(self) -> str:
        return self.args[0]


# The block kinds each family holds (a spec using any other kind is expressible in none of them).
_KINDS: dict[str, tuple[str, ...]] = {"nemotron_h": nemotron_h.KINDS, "mamba2": mamba2.KINDS,
                                      **{key: transformer.KINDS for key in transformer.FAMILIES}}


def _layer_kinds_fit(family: str, kinds: set[str]) -> bool:
    """Whether a family has every kind of layer the spec uses (the first thing that makes it a candidate)."""
    return kinds <= set(_KINDS[family])


_ARCHITECTURES = {"NemotronHForCausalLM": "nemotron_h", "Mamba2ForCausalLM": "mamba2",
                  **{fam.architecture: key for key, fam in transformer.FAMILIES.items()}}


def _model_type(config: dict, source: str | None) -> str:
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    if architectures is not None and (not isinstance(architectures, list)
                                      or not all(isinstance(a, str) for a in architectures)):
        raise SpecError([SpecIssue(("architectures",), "must be a list of class names", architectures,
                                   ", ".join(_ARCHITECTURES), source)], source)
    if model_type is None:  # some configs only name their architecture
        model_type = _ARCHITECTURES.get((architectures or [None])[0])
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise SpecError([SpecIssue(("model_type",), "unsupported model family", model_type, ", ".join(FAMILIES),
                                   source)], source)
    return model_type


class IgnoredConfigField(UserWarning):
    """A config field that is not a field of its family: archsearch (like transformers) ignored it."""


class HfImport(NamedTuple):
    spec: ModelSpec
    ignored: list[SpecIssue]  # fields of the config that are no field of its family, each named


def import_hf_config(config: dict, *, name: str | None = None, max_context: int | None = None,
                     source: str | None = None) -> ModelSpec:
    """The spec of a Hugging Face config dict (a `config.json`). Raises SpecError naming every config field
    that archsearch cannot express, or that the config lacks; warns (IgnoredConfigField) of each field that is
    no field of the family, which archsearch ignored."""
    spec, ignored = import_hf(config, name=name, max_context=max_context, source=source)
    for issue in ignored:
        warnings.warn(str(issue), IgnoredConfigField, stacklevel=2)
    return spec


def import_hf(config: dict, *, name: str | None = None, max_context: int | None = None,
              source: str | None = None) -> HfImport:
    """As import_hf_config, returning the ignored fields instead of warning of them."""
    if not isinstance(config, dict):
        raise SpecError([SpecIssue((), "a Hugging Face config is a JSON object", type(config).__name__,
                                   location=source)], source)
    model_type = _model_type(config, source)
    kwargs = {"name": name, "max_context": max_context, "source": source}
    if model_type == "nemotron_h":
        document, ignored = nemotron_h.import_config(config, **kwargs)
    elif model_type == "mamba2":
        document, ignored = mamba2.import_config(config, **kwargs)
    else:
        document, ignored = transformer.import_config(config, transformer.FAMILIES[model_type], **kwargs)
    return HfImport(parse_spec(document, source), ignored)


def usage_notes(config: dict[str, Any]) -> list[str]:
    """Notes for whoever loads an exported config: limits of the family's modeling code it cannot express."""
    return nemotron_h.usage_notes(config) if config.get("model_type") == nemotron_h.MODEL_TYPE else []


def export_hf_config(spec: ModelSpec, family: str | None = None) -> dict[str, Any]:
    """The config dict of the family that expresses `spec` exactly (or of `family`). Raises NotExpressibleError
    listing every feature the family cannot hold; with no family given, it names the closest one."""
    if family is not None:
        if family not in _EXPORTERS:
            raise SpecError([SpecIssue(("family",), "unknown Hugging Face family", family, ", ".join(FAMILIES))])
        config, check = _EXPORTERS[family](spec)
        if check.issues:
            raise NotExpressibleError(spec.name, family, check.issues)
        return config
    attempts = {name: _EXPORTERS[name](spec) for name in FAMILIES}
    for name, (config, check) in attempts.items():
        if not check.issues:
            return config
    kinds = {layer.kind for layer in spec.layers}
    fitting = [name for name in FAMILIES if _layer_kinds_fit(name, kinds)] or list(FAMILIES)
    closest = min(fitting, key=lambda name: len(attempts[name][1].issues))
    others = ", ".join(f"{name}: {len(attempts[name][1].issues)}" for name in FAMILIES if name != closest)
    raise NotExpressibleError(spec.name, closest, attempts[closest][1].issues,
                              f" (the closest family; features missing in the others: {others})")
