"""Target and proxy: a study may name the model it searches for (`target:`) beside the proxy it trains (`base:`).

Each sample (the pattern, per-symbol settings) is applied to both specs; everything the space does not search,
widths included, stays each side's own. The analytic screen (budget and parameter constraints, the size
objectives) judges the target; training, and so every trained metric, uses the proxy. Without a target the proxy
is judged, as before.

A space searching a width (`d_model`, a block's `n_heads`, ...) is refused with a target: the same absolute value
cannot suit a 9B target and a 1M proxy, and each side's widths are its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import ModelSpec, SpecError, count_parameters
from ..spec.errors import SpecIssue
from .documents import FileError, Marks, issue, nested
from .space import SearchSpace, check_space

# Absolute widths: a value that is right for one side's scale is wrong for the other's. Ratios (`expand`,
# `ffn_ratio`) scale with each side's d_model, and counts such as n_kv_heads or d_state are per-symbol settings.
WIDTH_FIELDS = ("d_model", "vocab_size")
BLOCK_WIDTH_FIELDS = ("n_heads", "head_dim", "ffn_dim")


@dataclass(frozen=True)
class Candidate:
    """One sample expanded twice: the proxy that trains and the target (None: the proxy is also judged)."""

    proxy: ModelSpec
    target: ModelSpec | None = None

    @property
    def judged(self) -> ModelSpec:
        """The spec the analytic screen judges."""
        return self.target if self.target is not None else self.proxy


def expand(sample, proxy_doc: dict[str, Any], target_doc: dict[str, Any] | None, name: str) -> Candidate:
    """The candidate of `sample` (archsearch.studies.space.Sample); a SpecError of the target names it."""
    proxy = sample.spec(proxy_doc, name)
    if target_doc is None:
        return Candidate(proxy)
    try:
        target = sample.spec(target_doc, target_doc["name"])  # its own name: the trial row says which trial
    except SpecError as err:
        raise SpecError(nested("target", err.issues)) from None
    return Candidate(proxy, target)


def target_fields(candidate: Candidate, analytic: dict[str, float]) -> dict[str, Any] | None:
    """The trial row's `target` column (None without a target): the spec the screen judged, its hashes and its
    analytic sizes (`analytic`: the screen's verdict on it)."""
    from .dedup import canonical_hash

    target = candidate.target
    if target is None:
        return None
    sizes = {key: (int(value) if key == "n_params" else float(value)) for key, value in analytic.items()}
    return {"name": target.name, "spec_hash": target.spec_hash(), "canonical_hash": canonical_hash(target),
            **sizes, "spec": target.to_dict()}


def proxy_params(candidate: Candidate, analytic: dict[str, float]) -> int:
    """The trained (proxy) model's parameter count; `analytic` is the screen's verdict on the judged spec."""
    if candidate.target is None:
        return int(analytic["n_params"])
    return int(count_parameters(candidate.proxy).total)


def width_paths(space: SearchSpace) -> list[str]:
    """The space's parameters that set an absolute width."""
    out = []
    for name in space.parameters:
        parts = name.split(".")
        if (len(parts) == 1 and parts[0] in WIDTH_FIELDS) or (
                len(parts) == 3 and parts[0] == "blocks" and parts[2] in BLOCK_WIDTH_FIELDS):
            out.append(name)
    return out


def check_target(space: SearchSpace, target: ModelSpec, marks: Marks, source: str | None,
                 space_marks: Marks, space_source: str | None, prefix: tuple) -> None:
    """A target must define every block the space touches, take every searched value, and not have its widths
    searched (FileError naming each problem)."""
    widths = width_paths(space)
    if widths:
        raise FileError("study file", [issue(
            space_marks, space_source, prefix + ("parameters", name),
            f"searches {name}, an absolute width, while the study names a target: each side keeps its own widths",
            allowed="per-symbol settings (e.g. blocks.M.d_state, blocks.*.n_kv_heads), ratios (expand, ffn_ratio), "
                    "or no target") for name in widths], source)
    try:
        check_space(space, target, space_marks, space_source, prefix)
    except FileError as err:
        raise FileError("study file", [
            SpecIssue(i.path, f"on the target {target.name!r}: {i.message}", i.value, i.allowed, i.location)
            for i in err.issues], source) from None
