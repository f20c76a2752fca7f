"""torch.compile across the runs of one process (a study worker trains trial after trial): a trial whose model
has the shapes of an earlier one reuses its compiled code, never compiling twice.

Two scopes (Recipe.compile_scope: `compile: true` and, on a GPU, `auto` mean "layers"): "model" compiles the whole
forward as one program; "layers" compiles each residual layer on its own, so one program per distinct layer (block,
widths, batch shape) serves every layer built of it and every pattern: a pattern search's new trial reuses the
layers an earlier trial compiled, where "model" compiles each new pattern whole (49-85 s of inductor work per
pattern for trial-d768 on a CPU, against 38 s once for its four layer kinds and nothing for a later pattern of
them). The price is the fusion across layer boundaries and a host call per layer: 1.0% of trial-d768's step on the
H200 (bench/RESULTS.md, 2026-12-06).

Dynamo keeps compiled code per Python code object (our model's `forward`, or ResidualLayer.forward for the
layers), guarded on the module's structure and tensor shapes, so a new model instance of the same spec and batch
passes the guards of the old entry. Two things would spoil that: (1) automatic dynamic shapes: a second trial
with other sizes would make dynamo recompile with symbolic sizes (slower kernels, and a different program than a
fresh process runs), so we compile with dynamic=False; (2) the recompile limit (8 entries per code object): past
it dynamo runs the code eagerly, silently. Each distinct compile signature (a model, or a layer program) takes two
entries (train and eval mode), so once the process holds as many as fit, a new one resets dynamo first; the
on-disk caches (archsearch.studies.compile_cache) make the next compile of a reset signature cheap. A signature
already seen never resets anything. One model with more layer programs than fit raises the limit to hold them.
"""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

ENTRIES_PER_SIGNATURE = 2  # the model's forward in train mode and in eval mode
BACKEND: Any = "inductor"  # torch.compile's backend (tests count compiles with a counting backend)

_seen: dict[str, None] = {}  # whole-model signatures compiled since the last reset, oldest first
_seen_layers: dict[str, None] = {}  # layer programs compiled since the last reset
_limit_before_raise: int | None = None  # dynamo's limit before compile_layers raised it (forget() restores it)


def _limit_name() -> str:
    """The config entry of dynamo's per-code-object limit (renamed from cache_size_limit in torch 2.6)."""
    return "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"


def recompile_limit() -> int:
    return int(getattr(torch._dynamo.config, _limit_name(), 8))


def _raise_recompile_limit(value: int) -> None:
    global _limit_before_raise
    if _limit_before_raise is None:
        _limit_before_raise = recompile_limit()
    setattr(torch._dynamo.config, _limit_name(), value)


def capacity() -> int:
    """Signatures one process keeps compiled at once."""
    return max(1, recompile_limit() // ENTRIES_PER_SIGNATURE)


# Spec fields that only set initial values, never the program: specs differing only there share compiled code.
INIT_ONLY = {"name", "description", "init"}
INIT_ONLY_BLOCK = {"dt_min", "dt_max", "dt_init_floor", "A_init_range"}


def program_of(spec) -> dict[str, Any]:
    """The spec without its initial-value fields: what decides the compiled forward."""
    doc = {k: v for k, v in spec.to_dict().items() if k not in INIT_ONLY}
    doc["pattern"] = spec.pattern_string  # one layer list, however the pattern was written
    doc["blocks"] = {symbol: {k: v for k, v in block.items() if k not in INIT_ONLY_BLOCK}
                     for symbol, block in doc.get("blocks", {}).items()}
    return doc


def signature(**parts: Any) -> str:
    """A stable key for what decides the compiled program (spec hash, batch shape, precision, ...)."""
    return json.dumps(parts, sort_keys=True, default=str)


def layer_program(spec, symbol: str) -> dict[str, Any]:
    """What decides one layer's compiled program: its block and the model-wide fields a layer reads."""
    doc = program_of(spec)
    return {"block": doc["blocks"][symbol], "d_model": doc["d_model"], "norm": doc["norm"],
            "max_context": doc["max_context"], "param_dtype": doc["param_dtype"]}


def fp8_within(fp8_layers: list[str], index: int) -> list[str]:
    """The fp8-converted Linear layers of layer `index`, named within the layer."""
    prefix = f"layers.{index}."
    return [name[len(prefix):] for name in fp8_layers if name.startswith(prefix)]


def compile_model(module: nn.Module, key: str) -> tuple[nn.Module, dict[str, Any]]:
    """torch.compile(module) without dynamic shapes; resets dynamo only when `key` is new and no room is left.
    Returns the compiled module and what happened (recorded in the run's result)."""
    reused = key in _seen
    reset = False
    if not reused and len(_seen) >= capacity():
        _reset()
        reset = True
    _seen[key] = None
    info = {"scope": "model", "seen_before": reused, "dynamo_reset": reset, "signatures_held": len(_seen),
            "capacity": capacity()}
    return torch.compile(module, dynamic=False, backend=BACKEND), info


class LayerwiseCompiled(nn.Module):
    """`model` (a HybridLM) run with each residual layer compiled on its own. The model is a submodule, so
    train()/eval() and DDP reach it; the weights are its own, and the model itself is left uncompiled (generation
    and final metrics call it eagerly with other shapes)."""

    def __init__(self, model: nn.Module, backend: Any):
        super().__init__()
        self.model = model
        self.compiled_layers = [torch.compile(layer, dynamic=False, backend=backend) for layer in model.layers]

    def forward(self, input_ids_BT: torch.Tensor) -> torch.Tensor:
        return self.model.forward_through(input_ids_BT, self.compiled_layers)


def compile_layers(model: nn.Module, layer_keys: list[str]) -> tuple[nn.Module, dict[str, Any]]:
    """LayerwiseCompiled(model); `layer_keys` holds each layer's program signature (layer_program), in layer order.
    Resets dynamo only when a program is new and no room is left. Returns the wrapper and what happened."""
    programs = list(dict.fromkeys(layer_keys))
    raised = None
    if len(programs) > capacity():  # one model alone: without room, its later layers would run eagerly
        raised = ENTRIES_PER_SIGNATURE * len(programs)
        _raise_recompile_limit(raised)
    new = [key for key in programs if key not in _seen_layers]
    reset = False
    if new and len(_seen_layers) + len(new) > capacity():
        _reset()
        reset = True
        new = programs  # the reset dropped the held ones too: all of this model's programs compile
    for key in programs:
        _seen_layers[key] = None
    info = {"scope": "layers", "seen_before": not new, "dynamo_reset": reset, "layer_programs": len(programs),
            "new_layer_programs": len(new), "signatures_held": len(_seen_layers), "capacity": capacity()}
    if raised is not None:
        info["recompile_limit_raised_to"] = raised
    return LayerwiseCompiled(model, BACKEND), info


def cache_counters() -> dict[str, int]:
    """This process's compile-cache outcomes so far, from torch's own counters: AOTAutograd's cache (a hit skips
    tracing the backward) and inductor's FX graph cache (a hit skips code generation)."""
    from torch._dynamo.utils import counters

    aot, inductor = counters["aot_autograd"], counters["inductor"]
    return {"aot_hit": aot["autograd_cache_hit"], "aot_miss": aot["autograd_cache_miss"],
            "aot_bypass": aot["autograd_cache_bypass"], "fx_hit": inductor["fxgraph_cache_hit"],
            "fx_miss": inductor["fxgraph_cache_miss"], "fx_bypass": inductor["fxgraph_cache_bypass"]}


def _reset() -> None:
    torch._dynamo.reset()
    _seen.clear()
    _seen_layers.clear()


def forget() -> None:
    """Reset dynamo and the signature record, and put back a recompile limit compile_layers raised (tests)."""
    global _limit_before_raise
    _reset()
    if _limit_before_raise is not None:
        setattr(torch._dynamo.config, _limit_name(), _limit_before_raise)
        _limit_before_raise = None
