"""Gated RMSNorm as Mamba-2 uses it before its output projection.

norm_before_gate=False (Mamba-2): y = rmsnorm(x * silu(z)) * weight; True: y = rmsnorm(x) * weight * silu(z).
The norm is taken per group of `group_size` channels (Mamba-2 uses d_inner / ngroups), over the last dim.
Backends: mamba_ssm's Triton `layernorm_gated`, triton (ours, kernels/triton_gated_norm.py), torch (float32, also
the reference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import _batching, _checks, _optional, registry

OP = "gated_rmsnorm"


def _validate(x, weight, z, eps, group_size):
    # Plain comparisons first; a helper (which formats the error) runs only when one fails, in the same order.
    ok = _checks.floating_on(x.device, x, weight, z)
    if not ok:
        _checks.floating(OP, x=x, weight=weight, z=z)
    x_shape = x.shape
    if len(x_shape) < 1:
        _checks.fail(OP, "x.shape", tuple(x.shape), "at least 1 dim (..., d)")
    d = x_shape[-1]
    if weight.shape != (d,):
        _checks.shape(OP, "weight", weight, (d,), "(d,)")
    if z is not None and z.shape != x_shape:
        _checks.fail(OP, "z.shape", tuple(z.shape), f"x's shape {tuple(x.shape)}")
    if group_size is not None and (not isinstance(group_size, int) or group_size < 1 or d % group_size):
        _checks.fail(OP, "group_size", group_size, f"None or a positive divisor of the last dim {d}")
    if not eps >= 0:
        _checks.fail(OP, "eps", eps, "a float >= 0")
    if not ok:
        _checks.same_device(OP, x, weight=weight, z=z)


def gated_rms_norm_reference(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=False):
    """Float32 math, result in x.dtype."""
    d = x.shape[-1]
    g = group_size or d
    h = x.float()
    if z is not None and not norm_before_gate:
        h = h * F.silu(z.float())
    h_GD = h.reshape(*h.shape[:-1], d // g, g)
    h = (h_GD * torch.rsqrt(h_GD.square().mean(-1, keepdim=True) + eps)).reshape(h.shape) * weight.float()
    if z is not None and norm_before_gate:
        h = h * F.silu(z.float())
    return h.to(x.dtype)


_MAMBA_MODULE = "mamba_ssm.ops.triton.layernorm_gated"


def gated_rms_norm_mamba_ssm(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=False):
    module, reason = _optional.import_mamba(_MAMBA_MODULE)
    if module is None:
        raise registry.BackendError(f"op {OP!r}: backend 'mamba_ssm' unavailable: {reason}")
    shape = x.shape
    if len(shape) >= 2:
        # the kernel offsets rows by row * row_stride in 32 bits: split the leading dim below 2^31 elements
        step = _batching.sub_batch(shape[0], math.prod(shape[1:]), _batching.INT32_ELEMENTS, x, z)
        if step < shape[0]:
            def call(x, z):
                return module.rmsnorm_fn(x, weight, None, z=z, eps=eps, group_size=group_size,
                                         norm_before_gate=norm_before_gate)

            return _batching.run_in_sub_batches(OP, call, step, dict(x=x, z=z), {},
                                                "mamba-ssm's Triton norm indexes rows with 32-bit offsets")
    return module.rmsnorm_fn(x, weight, None, z=z, eps=eps, group_size=group_size, norm_before_gate=norm_before_gate)


def gated_rms_norm_triton(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=False):
    from . import triton_gated_norm  # imports triton: only on first use

    return triton_gated_norm.gated_rms_norm_fn(x, weight, z, eps, group_size, norm_before_gate)


TRITON_MAX_GROUP = 8192  # one program holds a tile of whole groups in registers


def _triton_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    g = info.get("group_size")
    if g is not None and g > TRITON_MAX_GROUP:
        return f"group of {g} channels > {TRITON_MAX_GROUP} (a program holds whole groups in registers)"
    return None


def _mamba_accepts(**info) -> registry.Refusal:
    refusal = _optional.refuse_unless_cuda(info) or _optional.refuse_dtype(info, _optional.HALF_OR_FLOAT)
    if refusal:
        return refusal
    g, itemsize = info.get("group_size"), info.get("itemsize", 2)
    if g is not None and g * itemsize >= 65536:
        return f"group of {g} channels x {itemsize} bytes is >= 64 KB (the fused kernel's limit)"
    return None


def _default_call():
    cuda = _optional.has_cuda()
    return dict(device="cuda" if cuda else "cpu", dtype=torch.bfloat16 if cuda else torch.float32,
                group_size=4096, itemsize=2 if cuda else 4)


registry.register_op(OP, "gated RMSNorm (Mamba-2)", _default_call)
registry.register_backend(OP, "mamba_ssm", 100, gated_rms_norm_mamba_ssm,
                          probe=_optional.probe_module(_MAMBA_MODULE, mamba=True), accepts=_mamba_accepts)
# Ours is chosen before mamba-ssm's since its GPU parity tests passed (H100, 2026-12-07 and -08): faster on both
# sides at the 100M trial's shape (0.79 vs 1.13 ms forward, 1.49 vs 3.23 ms backward a step, bench/RESULTS.md).
TRITON_BY_DEFAULT = True
registry.register_backend(OP, "triton", 110, gated_rms_norm_triton, probe=_optional.triton_status,
                          accepts=_triton_accepts, auto=TRITON_BY_DEFAULT)
registry.register_backend(OP, "torch", 50, gated_rms_norm_reference)


def gated_rms_norm(
    x: torch.Tensor,  # (..., d)
    weight: torch.Tensor,  # (d,)
    z: torch.Tensor | None = None,  # (..., d)
    eps: float = 1e-6,
    group_size: int | None = None,
    norm_before_gate: bool = False,
) -> torch.Tensor:
    """(..., d) in x.dtype."""
    _validate(x, weight, z, eps, group_size)
    return registry.backend_fn(OP, call_items(x, group_size or x.shape[-1]))(x, weight, z, eps, group_size,
                                                                             norm_before_gate)


def call_items(x: torch.Tensor, group_size: int) -> tuple:
    """The call info as items sorted by name (the registry's key)."""
    return (("device", _checks.device_type(x)), ("dtype", x.dtype), ("group_size", group_size),
            ("itemsize", x.element_size()))
