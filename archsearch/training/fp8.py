"""FP8 training as a conversion of the model before training (and before torch.compile): eligible nn.Linear layers
are swapped for FP8 ones. Two converters share one interface: torchao float8 (the default: tested, CPU emulation
included, run on H100s in bench/RESULTS.md) and transformer-engine (written to its documented API, never run: it
cannot be installed on our machines, so precision.py uses it only when ARCHSEARCH_FP8_BACKEND asks for it).
Layers too small to gain stay as they are, and so does the LM head: whatever its class (ours is `LMHead`, not an
nn.Linear), anything under a module named `lm_head` / `head`, and any layer whose weight is tied to another's.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from torch import nn

from .recipe import Recipe

FP8_ALIGN = 16  # FP8 GEMMs need both matrix dimensions divisible by 16


HEAD_NAMES = ("lm_head", "head")


def tied_layers(model: nn.Module) -> set[str]:
    """Names of the modules whose `weight` is also another module's (a head tied to the embedding, say)."""
    owners: dict[int, list[str]] = {}
    for fqn, module in model.named_modules(remove_duplicate=False):
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            owners.setdefault(id(weight), []).append(fqn)
    return {fqn for names in owners.values() if len(names) > 1 for fqn in names}


def skip_reason(fqn: str, module: nn.Module, min_dim: int, tied: set[str] = frozenset()) -> str | None:
    """Why the layer at `fqn` stays in high precision, or None when it should be converted. The head rules come
    first, so they hold whatever class the head is."""
    if any(part in HEAD_NAMES for part in fqn.split(".")):
        return "LM head kept in bf16 (its logits feed the loss directly)"
    if fqn in tied:
        return "weight tied to another layer's (the embedding's, for a tied head): kept in bf16"
    if not isinstance(module, nn.Linear):
        return "not an nn.Linear"
    dims = (module.in_features, module.out_features)
    if any(d % FP8_ALIGN for d in dims):
        return f"dims {dims} not multiples of {FP8_ALIGN}"
    if min(dims) < min_dim:
        return f"dims {dims} below fp8_min_dim {min_dim}"
    return None


def eligible_linears(model: nn.Module, min_dim: int) -> list[str]:
    tied = tied_layers(model)
    return [fqn for fqn, m in model.named_modules()
            if isinstance(m, nn.Linear) and skip_reason(fqn, m, min_dim, tied) is None]


class Fp8Converter:
    """Swap eligible Linear layers in place; `forward_context` wraps each forward (some backends need one)."""

    name: str

    def convert(self, model: nn.Module, layers: list[str]) -> None:
        raise NotImplementedError

    def forward_context(self) -> ContextManager:
        return contextlib.nullcontext()


class TorchaoFloat8(Fp8Converter):
    name = "torchao"

    def __init__(self, recipe: str = "tensorwise", emulate: bool = False):
        self.recipe, self.emulate = recipe, emulate

    def convert(self, model: nn.Module, layers: list[str]) -> None:
        import dataclasses

        from torchao.float8 import Float8LinearConfig, convert_to_float8_training

        config = dataclasses.replace(Float8LinearConfig.from_recipe_name(self.recipe), emulate=self.emulate)
        chosen = set(layers)
        convert_to_float8_training(model, config=config, module_filter_fn=lambda m, fqn: fqn in chosen)


class TransformerEngineFp8(Fp8Converter):
    """te.Linear layers with the weights copied over; forwards run under te.fp8_autocast: per-tensor current
    scaling for "tensorwise"; for "rowwise", TE's block scaling (1x128 tiles) where this TE has it, else delayed
    scaling (TE has no row-wise recipe of torchao's kind)."""

    name = "transformer_engine"

    def __init__(self, recipe: str = "tensorwise"):
        import transformer_engine.common.recipe as te_recipe

        if recipe == "tensorwise":
            self.fp8_recipe = te_recipe.Float8CurrentScaling()
        else:
            self.fp8_recipe = getattr(te_recipe, "Float8BlockScaling", te_recipe.DelayedScaling)()

    def convert(self, model: nn.Module, layers: list[str]) -> None:
        import transformer_engine.pytorch as te

        for fqn in layers:
            parent_name, _, child = fqn.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            old: nn.Linear = getattr(parent, child)
            new = te.Linear(old.in_features, old.out_features, bias=old.bias is not None,
                            params_dtype=old.weight.dtype, device=old.weight.device)
            with torch.no_grad():
                new.weight.copy_(old.weight)
                if old.bias is not None:
                    new.bias.copy_(old.bias)
            setattr(parent, child, new)

    def forward_context(self) -> ContextManager:
        import transformer_engine.pytorch as te

        return te.fp8_autocast(enabled=True, fp8_recipe=self.fp8_recipe)


def make_converter(backend: str, recipe: Recipe) -> Fp8Converter:
    if backend == "transformer_engine":
        return TransformerEngineFp8(recipe.fp8_recipe)
    return TorchaoFloat8(recipe.fp8_recipe, emulate=recipe.fp8_emulate)


def convert_model(model: nn.Module, backend: str, recipe: Recipe) -> tuple[Fp8Converter, list[str]]:
    """Convert in place; returns the converter (for its forward context) and the converted layers' names."""
    converter = make_converter(backend, recipe)
    layers = eligible_linears(model, recipe.fp8_min_dim)
    if layers:
        converter.convert(model, layers)
    return converter, layers

