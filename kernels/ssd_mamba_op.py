"""mamba-ssm's Triton SSD scan as two opaque torch ops (forward, backward), so torch.compile keeps a Mamba layer
in one graph.

mamba-ssm wraps its scan in an autograd.Function whose backward reads `best_config.kwargs[...]` of an
autotuned kernel, which dynamo cannot trace: every Mamba layer broke into two graphs around an eager scan
(5 graph breaks a step of the 100M trial, TORCH_LOGS=graph_breaks on the H100, 2026-12-07). As custom ops,
dynamo records one call and never looks inside; their fake implementations give it the output shapes.

The ops call mamba-ssm's own forward and backward functions (the ones its autograd.Function calls), so the
numbers are mamba-ssm's. What differs: outputs and gradients come back contiguous and in their input's dtype
(a custom op's outputs must match its fake implementation's layout exactly), and absent optional gradients come
back as empty tensors that the autograd formula turns into None (a custom op cannot return None).
"""

import math
from typing import Any, Optional

import torch
from torch import Tensor

from . import _optional

MODULE = "mamba_ssm.ops.triton.ssd_combined"
_EMPTY = (0,)  # the shape of "no tensor" among a custom op's outputs


def mamba_module() -> Any:
    """mamba-ssm's ssd_combined module (the CPU tests put a torch stand-in here to run the ops on CPU)."""
    module, reason = _optional.import_mamba(MODULE)
    if module is None:
        raise RuntimeError(f"op 'ssd_scan': mamba-ssm's Triton scan unavailable: {reason}")
    return module


def _like(t: Tensor, like: Tensor) -> Tensor:
    return t.to(like.dtype).contiguous()


@torch.library.custom_op("archsearch::mamba_ssd_forward", mutates_args=())
def mamba_ssd_forward(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int, D: Optional[Tensor], z: Optional[Tensor],
    dt_bias: Optional[Tensor], initial_states: Optional[Tensor], dt_softplus: bool, dt_min: float, dt_max: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(y, y before the z gate or empty when z is None, final states in float32)."""
    out, out_x, _dt, _dA_cumsum, _states, final_states = mamba_module()._mamba_chunk_scan_combined_fwd(
        x, dt, A, B, C, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states,
        dt_softplus=dt_softplus, dt_limit=(dt_min, dt_max))
    out_x = x.new_empty(_EMPTY) if out_x is None else _like(out_x, x)
    return _like(out, x), out_x, final_states.float().contiguous()


@mamba_ssd_forward.register_fake
def _(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus, dt_min, dt_max):
    b, _, h, p = x.shape
    out_x = x.new_empty(_EMPTY) if z is None else x.new_empty(x.shape)
    return x.new_empty(x.shape), out_x, x.new_empty((b, h, p, B.shape[-1]), dtype=torch.float32)


@torch.library.custom_op("archsearch::mamba_ssd_backward", mutates_args=())
def mamba_ssd_backward(
    dout: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, out: Tensor, chunk_size: int,
    D: Optional[Tensor], z: Optional[Tensor], dt_bias: Optional[Tensor], initial_states: Optional[Tensor],
    dfinal_states: Optional[Tensor], dt_softplus: bool, dt_min: float, dt_max: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of (x, dt, A, B, C, D, z, dt_bias, initial_states); empty where that input is None."""
    grads = mamba_module()._mamba_chunk_scan_combined_bwd(
        dout, x, dt, A, B, C, out, chunk_size, D=D, z=z, dt_bias=dt_bias, initial_states=initial_states,
        dfinal_states=dfinal_states, dt_softplus=dt_softplus, dt_limit=(dt_min, dt_max))
    inputs = (x, dt, A, B, C, D, z, dt_bias, initial_states)
    return tuple(x.new_empty(_EMPTY) if t is None or g is None else _like(g, t) for g, t in zip(grads, inputs))


@mamba_ssd_backward.register_fake
def _(dout, x, dt, A, B, C, out, chunk_size, D, z, dt_bias, initial_states, dfinal_states, dt_softplus, dt_min,
      dt_max):
    inputs = (x, dt, A, B, C, D, z, dt_bias, initial_states)
    return tuple(x.new_empty(_EMPTY) if t is None else t.new_empty(t.shape) for t in inputs)


def _setup_context(ctx, inputs, output):
    x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, dt_softplus, dt_min, dt_max = inputs
    out, out_x, _final = output
    # mamba-ssm's backward recomputes from the inputs and takes y before the gate when there is one
    ctx.save_for_backward(x, dt, A, B, C, out if z is None else out_x, D, z, dt_bias, initial_states)
    ctx.chunk_size, ctx.dt_softplus, ctx.dt_limit = chunk_size, dt_softplus, (dt_min, dt_max)


def _backward(ctx, dout, _dout_x, dfinal_states):
    x, dt, A, B, C, out, D, z, dt_bias, initial_states = ctx.saved_tensors
    grads = mamba_ssd_backward(dout, x, dt, A, B, C, out, ctx.chunk_size, D, z, dt_bias, initial_states,
                               dfinal_states, ctx.dt_softplus, *ctx.dt_limit)
    inputs = (x, dt, A, B, C, D, z, dt_bias, initial_states)
    dx, ddt, dA, dB, dC, dD, dz, ddt_bias, dinit = (None if t is None else g for g, t in zip(grads, inputs))
    return dx, ddt, dA, dB, dC, None, dD, dz, ddt_bias, dinit, None, None, None


mamba_ssd_forward.register_autograd(_backward, setup_context=_setup_context)


def mamba_chunk_scan_combined(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                              dt_softplus=False, dt_limit=(0.0, math.inf), return_final_states=False):
    """mamba-ssm's `mamba_chunk_scan_combined` (no seq_idx / varlen) through the ops above."""
    out, _out_x, final_states = mamba_ssd_forward(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states,
                                                  dt_softplus, float(dt_limit[0]), float(dt_limit[1]))
    return (out, final_states) if return_final_states else out
