"""Which numerics a run actually uses, and why: fp32, bf16 autocast, or fp8 through a converter. FP8 needs a CUDA
GPU of compute capability >= 8.9 and the FP8 backend installed; elsewhere it falls back (bf16 on GPUs, fp32 on
CPUs) with the reason recorded, or fails before training when require_fp8 is set.

The FP8 backend is torchao, the one that has run (its CPU emulation in the tests, float8 on the H100/H200 in
bench/RESULTS.md). transformer-engine's converter is written to its documented API but has never run anywhere (its
wheel is too large for the project's GPU machine), so it is used only when asked for by name:
ARCHSEARCH_FP8_BACKEND=transformer_engine (recorded as the run's fp8_backend), never because it is installed."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

import torch

from archsearch.errors import UserError
from archsearch.spec import ModelSpec

from .fp8_table import decide_fp8
from .recipe import Recipe

FP8_BACKEND_ENV = "ARCHSEARCH_FP8_BACKEND"
FP8_BACKENDS = {"torchao": "torchao", "transformer_engine": "transformer-engine"}  # name -> package to install


@dataclass(frozen=True)
class PrecisionPlan:
    name: str  # "fp32" | "bf16" | "fp8"
    autocast_dtype: torch.dtype | None
    fp8_backend: str | None  # "transformer_engine" | "torchao"
    reason: str
    auto: dict[str, Any] | None = None  # precision "auto" on a GPU: fp8_table's decision (use_fp8, reason, ...)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.reason})"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def fp8_backend() -> str:
    """The FP8 converter to use: torchao unless ARCHSEARCH_FP8_BACKEND names another (see the module docstring)."""
    name = os.environ.get(FP8_BACKEND_ENV, "").strip() or "torchao"
    if name not in FP8_BACKENDS:
        raise UserError(f"{FP8_BACKEND_ENV}={name!r}: not an FP8 backend; use one of {', '.join(FP8_BACKENDS)}")
    return name


def fp8_blocker(device: torch.device) -> str | None:
    """Why FP8 training cannot run on `device` with the chosen backend, or None."""
    if device.type != "cuda":
        return device.type.upper()
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"{torch.cuda.get_device_name(device)} has compute capability {major}.{minor}, FP8 needs >= 8.9"
    backend = fp8_backend()
    if not installed(backend):
        return f"{FP8_BACKENDS[backend]} is not installed (pip install {FP8_BACKENDS[backend]})"
    return None


def plan_precision(recipe: Recipe, device: torch.device, spec: ModelSpec | None = None,
                   gemm_tokens: int | None = None) -> PrecisionPlan:
    """The run's numerics. precision "auto" needs `spec` and `gemm_tokens` (the rows of one forward's GEMMs: one
    micro-batch on one rank, batch x seq_len): on a GPU it asks fp8_table whether fp8 pays for this spec there."""
    if recipe.precision == "auto":
        return _plan_auto(recipe, device, spec, gemm_tokens)
    cuda = device.type == "cuda"
    requested = recipe.precision or ("bf16" if cuda else "fp32")
    half = torch.bfloat16 if cuda else None  # the fallback of fp8: bf16 autocast on GPUs, fp32 on CPUs
    default = "requested" if recipe.precision else f"default on {device.type.upper()}"
    if requested == "fp32":
        return PrecisionPlan("fp32", None, None, default)
    if requested == "bf16":
        return PrecisionPlan("bf16", torch.bfloat16, None, f"autocast, fp32 master weights; {default}")
    backend = fp8_backend()  # a bad ARCHSEARCH_FP8_BACKEND is an error even where FP8 cannot run
    if recipe.fp8_emulate:
        if not installed("torchao"):
            raise UserError("recipe: fp8_emulate needs torchao (pip install torchao)")
        return PrecisionPlan("fp8", half, "torchao", f"torchao {recipe.fp8_recipe}, emulated"
                             + (" under bf16 autocast" if cuda else " in fp32 on CPU"))
    blocker = fp8_blocker(device)
    if blocker is not None:
        if recipe.require_fp8:
            raise UserError(f"recipe: require_fp8 is set but FP8 is unavailable here: {blocker}")
        return PrecisionPlan("bf16" if cuda else "fp32", half, None, f"fp8 unavailable: {blocker}")
    if backend == "transformer_engine":
        return PrecisionPlan("fp8", torch.bfloat16, "transformer_engine",
                             f"transformer-engine {recipe.fp8_recipe} scaling (asked for by {FP8_BACKEND_ENV}; "
                             "unverified), bf16 autocast elsewhere")
    return PrecisionPlan("fp8", torch.bfloat16, "torchao", f"torchao float8 {recipe.fp8_recipe}, bf16 autocast "
                         "elsewhere")


def _plan_auto(recipe: Recipe, device: torch.device, spec: ModelSpec | None, gemm_tokens: int | None) -> PrecisionPlan:
    if device.type != "cuda":  # as the CPU default: fp32 (fp8 emulation is only ever asked for explicitly)
        return PrecisionPlan("fp32", None, None, "auto: fp32 on CPU")
    if spec is None or gemm_tokens is None:
        raise UserError("precision auto needs the spec and the tokens per forward to decide (plan_precision)")
    decision = decide_fp8(spec, gemm_tokens, torch.cuda.get_device_name(device), min_dim=recipe.fp8_min_dim)
    record = decision.to_dict()
    if not decision.use_fp8:
        return PrecisionPlan("bf16", torch.bfloat16, None, f"auto: {decision.reason}", record)
    blocker = fp8_blocker(device)
    if blocker is not None:
        return PrecisionPlan("bf16", torch.bfloat16, None, f"auto: fp8 would pay but is unavailable: {blocker}",
                             {**record, "use_fp8": False, "blocked": blocker})
    backend = fp8_backend()
    return PrecisionPlan("fp8", torch.bfloat16, backend, f"auto: {decision.reason}; {backend} float8 "
                         f"{recipe.fp8_recipe}, bf16 autocast elsewhere", record)
