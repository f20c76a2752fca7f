"""Which numerics a run actually uses, and why: fp32, bf16 autocast, or fp8 through a converter. FP8 needs a CUDA
GPU of compute capability >= 8.9 and transformer-engine or torchao; elsewhere it falls back (bf16 on GPUs, fp32 on
CPUs) with the reason recorded, or fails before training when require_fp8 is set."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from archsearch.errors import UserError

from .recipe import Recipe


@dataclass(frozen=True)
class PrecisionPlan:
    name: str  # "fp32" | "bf16" | "fp8"
    autocast_dtype: torch.dtype | None
    fp8_backend: str | None  # "transformer_engine" | "torchao"
    reason: str

    @property
    def label(self) -> str:
        return f"{self.name} ({self.reason})"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def fp8_blocker(device: torch.device) -> str | None:
    """Why FP8 training cannot run on `device`, or None."""
    if device.type != "cuda":
        return device.type.upper()
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < (8, 9):
        return f"{torch.cuda.get_device_name(device)} has compute capability {major}.{minor}, FP8 needs >= 8.9"
    if not (installed("transformer_engine") or installed("torchao")):
        return "neither transformer-engine nor torchao is installed"
    return None


def plan_precision(recipe: Recipe, device: torch.device) -> PrecisionPlan:
    cuda = device.type == "cuda"
    requested = recipe.precision or ("bf16" if cuda else "fp32")
    half = torch.bfloat16 if cuda else None  # the fallback of fp8: bf16 autocast on GPUs, fp32 on CPUs
    default = "requested" if recipe.precision else f"default on {device.type.upper()}"
    if requested == "fp32":
        return PrecisionPlan("fp32", None, None, default)
    if requested == "bf16":
        return PrecisionPlan("bf16", torch.bfloat16, None, f"autocast, fp32 master weights; {default}")
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
    if installed("transformer_engine"):
        return PrecisionPlan("fp8", torch.bfloat16, "transformer_engine",
                             f"transformer-engine {recipe.fp8_recipe} scaling, bf16 autocast elsewhere")
    return PrecisionPlan("fp8", torch.bfloat16, "torchao", f"torchao float8 {recipe.fp8_recipe}, bf16 autocast "
                         "elsewhere")
