"""spec -> model: validate the device/dtype, check backends, allocate (or not, on meta), initialise from the seed."""

from __future__ import annotations

import torch

from archsearch.errors import UserError
from archsearch.spec import ModelSpec
from archsearch.spec.dtypes import WEIGHT_DTYPES

from .checks import check_backends
from .model import HybridLM

DTYPES = {name: getattr(torch, name) for name in WEIGHT_DTYPES}  # the torch dtype of each name


def resolve_dtype(dtype: torch.dtype | str | None, spec: ModelSpec) -> torch.dtype:
    if dtype is None:
        return DTYPES[spec.param_dtype]
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    raise UserError(f"build: dtype {dtype!r} is not supported; allowed: {', '.join(DTYPES)} (or None for the "
                    f"spec's param_dtype, {spec.param_dtype})")


def torch_device_of(device: torch.device | str) -> torch.device:
    """Any device torch knows, meta included (the builder allocates nothing there)."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"build: device {device!r} is not a device ({err}); allowed: 'cpu', 'cuda', 'cuda:N', "
                        "'meta'") from None


def build(spec: ModelSpec, device: torch.device | str = "cpu", dtype: torch.dtype | str | None = None,
          seed: int = 0) -> HybridLM:
    """The model for `spec`. On the meta device nothing is allocated (for accounting); elsewhere the weights are
    drawn from `seed`, identically on every device and dtype."""
    if not isinstance(spec, ModelSpec):
        raise UserError(f"build: spec must be an archsearch.ModelSpec (load one with archsearch.load_spec), got "
                        f"{type(spec).__name__}")
    torch_dtype = resolve_dtype(dtype, spec)
    torch_device = torch_device_of(device)
    if torch_device.type != "meta":
        check_backends(spec, torch_device, torch_dtype)
    model = HybridLM(spec, device=torch_device, dtype=torch_dtype)
    if torch_device.type != "meta":
        model.init_weights(seed)
    return model
