"""The middle of a Mamba-2 mixer (conv1d + SiLU, SSD scan, gated RMSNorm) as two opaque torch ops, from the input
projection's output zxbcdt to what the output projection reads.

Why: run as three ops, a compiled training step copied between them three times a layer: x/B/C split out of the
conv's output for the scan, the scan's dx/dB/dC concatenated into the conv's dy, and dz/dxBC/ddt concatenated into
zxbcdt's gradient (about 5 ms of the 100M trial's 98 ms step on the H100, bench/RESULTS.md). Here each kernel
reads its inputs as views of one buffer and writes its gradients straight into slices of one buffer, as mamba-ssm's
own `mamba_split_conv1d_scan_combined` does: the scan's backward fills dx/dB/dC side by side in one buffer (the conv
output's gradient, which the conv's backward reads in its own layout) and ddt inside dzxbcdt, the norm's backward
fills dz there, and our conv's backward writes its input's gradient there.

The kernels: our Triton conv (kernels/triton_conv1d.py), mamba-ssm's Triton scan, and the gated norm the
gated_rmsnorm op would choose (mamba-ssm's or ours, kernels/triton_gated_norm.py), through the functions their own
autograd.Functions call, so the numbers are theirs. The forward returns, besides y, what the backward reads (the
conv's output, y before the norm and the norm's rstd), the same tensors the three separate ops saved, so memory
stays as it was; nothing is recomputed. On the H100 the three copies are gone; the two copies of zxbcdt inductor
then made on each side of the ops (torch's default layout rule for custom ops) went with the LAYOUT tag below.
mamba-ssm's norm backward was 1.6x slower here than as its own op, most likely because it writes dz into zxbcdt's
gradient, 5,144-wide rows that Triton cannot prove aligned, one bf16 at a time (as our norm's PTX did before it
stated the alignment, triton_launch.py).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor

from . import _optional

SCAN_MODULE = "mamba_ssm.ops.triton.ssd_combined"
NORM_MODULE = "mamba_ssm.ops.triton.layernorm_gated"
_EMPTY = (0,)  # the shape of "no tensor" among a custom op's outputs


class Kernels(NamedTuple):
    """The functions the ops call (the CPU tests put torch stand-ins here)."""
    scan_forward: Any  # mamba-ssm's _mamba_chunk_scan_combined_fwd
    scan_backward: Any  # mamba-ssm's _mamba_chunk_scan_combined_bwd (fills given dx, ddt, dB, dC, dz)
    norm_forward: Any  # (rows x, weight, rows z, eps, group_size) -> (y, rstd (groups x rows, float32))
    norm_backward: Any  # (dy, x, weight, z, rstd, eps, group_size, dz to fill) -> (dx, dweight, dz)
    conv_forward: Any  # our triton_conv1d.conv_forward
    conv_backward: Any  # our triton_conv1d.conv_backward (fills a given dx)


NORMS = ("mamba_ssm", "triton")  # the gated norm's kernels: mamba-ssm's or ours (the gated_rmsnorm op's choice)
# Inductor may hand the ops their inputs in any layout: every kernel takes strided views (the scan copies what it
# cannot), where torch's default for custom ops (needs_exact_strides) made inductor copy zxbcdt on each side of the
# ops to the traced strides (1.55 ms a step each at the 100M trial on the H100; gone with this tag, 2026-12-07).
LAYOUT = (torch.Tag.flexible_layout,)


@functools.lru_cache(maxsize=None)
def kernels(norm: str) -> Kernels:
    scan, why = _optional.import_mamba(SCAN_MODULE)
    if scan is None:
        raise RuntimeError(f"op 'mamba_mixer': mamba-ssm's Triton scan unavailable: {why}")
    from . import triton_conv1d  # imports triton: only on first use

    norm_forward, norm_backward = _norm_kernels(norm)
    return Kernels(scan._mamba_chunk_scan_combined_fwd, scan._mamba_chunk_scan_combined_bwd, norm_forward,
                   norm_backward, triton_conv1d.conv_forward, triton_conv1d.conv_backward)


def _norm_kernels(norm: str):
    """(forward, backward) with Kernels' signatures, norm_before_gate=False (Mamba-2's)."""
    if norm == "triton":
        from . import triton_gated_norm

        def forward(x, weight, z, eps, group_size):
            return triton_gated_norm.norm_forward(x, weight, z, eps, group_size, False)

        def backward(dy, x, weight, z, rstd, eps, group_size, dz):
            return triton_gated_norm.norm_backward(dy, x, weight, z, rstd, group_size, False, dz=dz)

        return forward, backward
    if norm != "mamba_ssm":
        raise ValueError(f"op 'mamba_mixer': argument norm={norm!r} is invalid; allowed: {', '.join(NORMS)}")
    module, why = _optional.import_mamba(NORM_MODULE)
    if module is None:
        raise RuntimeError(f"op 'mamba_mixer': mamba-ssm's Triton gated norm unavailable: {why}")

    def forward(x, weight, z, eps, group_size):
        y, _mean, rstd = module._layer_norm_fwd(x, weight, None, eps, z=z, group_size=group_size,
                                                norm_before_gate=False, is_rms_norm=True)
        return y, rstd

    def backward(dy, x, weight, z, rstd, eps, group_size, dz):
        dx, dweight, _dbias, dz = module._layer_norm_bwd(dy, x, weight, None, eps, None, rstd, z,
                                                         group_size=group_size, norm_before_gate=False,
                                                         is_rms_norm=True, dz=dz)
        return dx, dweight, dz

    return forward, backward


def d_inner_of(zxbcdt: Tensor, n_heads: int, n_groups: int, d_state: int) -> int:
    """zxbcdt's width is 2 d_inner + 2 g n + h (z, then x, B, C, then dt)."""
    return (zxbcdt.shape[-1] - n_heads - 2 * n_groups * d_state) // 2


class ZxBCdt(NamedTuple):
    z: Tensor  # (b, l, h, p)
    xBC: Tensor  # (b, l, conv_dim)
    dt: Tensor  # (b, l, h)


def split_zxbcdt(zxbcdt: Tensor, d_inner: int, n_heads: int) -> ZxBCdt:
    """The input projection's output as views (here and in the composite path, kernels/mixer.py; a layout that
    allows none, possible only for an input, is copied)."""
    z, xBC, dt = zxbcdt.split([d_inner, zxbcdt.shape[-1] - d_inner - n_heads, n_heads], dim=-1)
    b, l, _ = zxbcdt.shape
    return ZxBCdt(z.reshape(b, l, n_heads, d_inner // n_heads), xBC, dt)


def split_xBC(xBC: Tensor, n_heads: int, n_groups: int, d_state: int) -> tuple[Tensor, Tensor, Tensor]:
    """x (b, l, h, p), B and C (b, l, g, n): views (as split_zxbcdt)."""
    b, l, width = xBC.shape
    gn = n_groups * d_state
    x, B, C = xBC.split([width - 2 * gn, gn, gn], dim=-1)
    return (x.reshape(b, l, n_heads, -1), B.reshape(b, l, n_groups, d_state), C.reshape(b, l, n_groups, d_state))


def _rows(t: Tensor) -> Tensor:
    """(b, l, ...) -> (b * l, rest), as the norm kernels take it (rows may be strided, a row's elements not): a view
    where the layout allows, a copy otherwise (an input only: every tensor the ops write into is one they made,
    row-major)."""
    rows = t.reshape(t.shape[0] * t.shape[1], -1)
    return rows if rows.stride(-1) == 1 else rows.contiguous()


@torch.library.custom_op("archsearch::mamba_mixer_forward", mutates_args=(), tags=LAYOUT)
def mamba_mixer_forward(
    zxbcdt: Tensor, conv_weight: Tensor, conv_bias: Optional[Tensor], dt_bias: Tensor, A: Tensor, D: Tensor,
    norm_weight: Optional[Tensor], n_heads: int, n_groups: int, d_state: int, chunk_size: int, norm_eps: float,
    norm: str, dt_min: float, dt_max: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(y (b, l, d_inner), the conv's output (b, l, conv_dim), y before the norm or the z gate, the norm's rstd
    (float32, empty without a norm)). zxbcdt (b, l, d_inner + conv_dim + h) is the input projection's output; norm
    names the gated norm's kernels (NORMS)."""
    k = kernels(norm)
    d_inner = d_inner_of(zxbcdt, n_heads, n_groups, d_state)
    views = split_zxbcdt(zxbcdt, d_inner, n_heads)
    xBC_conv = k.conv_forward(views.xBC.transpose(1, 2), conv_weight, conv_bias, None, True).transpose(1, 2)
    x, B, C = split_xBC(xBC_conv, n_heads, n_groups, d_state)
    gate = None if norm_weight is not None else views.z
    out, out_x, *_ = k.scan_forward(x, views.dt, A, B, C, chunk_size, D=D, z=gate, dt_bias=dt_bias, dt_softplus=True,
                                    dt_limit=(dt_min, dt_max))
    b, l = zxbcdt.shape[:2]
    if norm_weight is None:
        return (out.reshape(b, l, d_inner), xBC_conv.contiguous(), out_x.reshape(b, l, d_inner),
                zxbcdt.new_empty(_EMPTY, dtype=torch.float32))
    y, rstd = k.norm_forward(_rows(out), norm_weight, _rows(views.z), norm_eps, d_inner // n_groups)
    return y.view(b, l, d_inner), xBC_conv.contiguous(), out.reshape(b, l, d_inner), rstd


@mamba_mixer_forward.register_fake
def _(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state, chunk_size, norm_eps,
      norm, dt_min, dt_max):
    b, l, _ = zxbcdt.shape
    d_inner = d_inner_of(zxbcdt, n_heads, n_groups, d_state)
    rows = b * l * n_groups if norm_weight is not None else 0
    return (zxbcdt.new_empty((b, l, d_inner)), zxbcdt.new_empty((b, l, conv_weight.shape[0])),
            zxbcdt.new_empty((b, l, d_inner)), zxbcdt.new_empty((rows,), dtype=torch.float32))


@torch.library.custom_op("archsearch::mamba_mixer_backward", mutates_args=(), tags=LAYOUT)
def mamba_mixer_backward(
    dy: Tensor, zxbcdt: Tensor, xBC_conv: Tensor, y_before_norm: Tensor, rstd: Tensor, conv_weight: Tensor,
    conv_bias: Optional[Tensor], dt_bias: Tensor, A: Tensor, D: Tensor, norm_weight: Optional[Tensor], n_heads: int,
    n_groups: int, d_state: int, chunk_size: int, norm_eps: float, norm: str, dt_min: float, dt_max: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of (zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight); empty where that input is None."""
    k = kernels(norm)
    b, l, _ = zxbcdt.shape
    d_inner = d_inner_of(zxbcdt, n_heads, n_groups, d_state)
    views = split_zxbcdt(zxbcdt, d_inner, n_heads)
    x, B, C = split_xBC(xBC_conv, n_heads, n_groups, d_state)
    dzxbcdt = zxbcdt.new_empty(zxbcdt.shape)  # row-major whatever zxbcdt's layout (the norm fills dz as rows)
    grad = split_zxbcdt(dzxbcdt, d_inner, n_heads)
    dxBC_conv = xBC_conv.new_empty(xBC_conv.shape)  # the scan's dx, dB, dC side by side: the conv output's gradient
    dx, dB, dC = split_xBC(dxBC_conv, n_heads, n_groups, d_state)
    dy = dy.contiguous()
    head_shape = (b, l, n_heads, d_inner // n_heads)
    if norm_weight is not None:
        dout, dnorm_weight, _dz = k.norm_backward(_rows(dy), _rows(y_before_norm), norm_weight, _rows(views.z), rstd,
                                                  norm_eps, d_inner // n_groups, _rows(grad.z))
        scan_grads = k.scan_backward(dout.view(head_shape), x, views.dt, A, B, C, y_before_norm.reshape(head_shape),
                                     chunk_size, D=D, z=None, dt_bias=dt_bias, dt_softplus=True,
                                     dt_limit=(dt_min, dt_max), dx=dx, ddt=grad.dt, dB=dB, dC=dC)
    else:
        dnorm_weight = None
        scan_grads = k.scan_backward(dy.view(head_shape), x, views.dt, A, B, C, y_before_norm.reshape(head_shape),
                                     chunk_size, D=D, z=views.z, dt_bias=dt_bias, dt_softplus=True,
                                     dt_limit=(dt_min, dt_max), dx=dx, ddt=grad.dt, dB=dB, dC=dC, dz=grad.z)
    _dx, _ddt, dA, _dB, _dC, dD, _dz, ddt_bias, _dinit = scan_grads[:9]
    # the conv input's gradient goes straight into its slice of dzxbcdt
    _dxBC, dconv_weight, dconv_bias = k.conv_backward(views.xBC.transpose(1, 2), conv_weight, conv_bias, None,
                                                      dxBC_conv.transpose(1, 2), True, dx=grad.xBC.transpose(1, 2))
    grads = (dconv_weight, dconv_bias, ddt_bias, dA, dD, dnorm_weight)
    inputs = (conv_weight, conv_bias, dt_bias, A, D, norm_weight)
    # in each input's dtype and contiguous (a custom op's outputs match its fake); empty for an absent input
    return (dzxbcdt, *(zxbcdt.new_empty(_EMPTY) if t is None else g.to(t.dtype).contiguous()
                       for g, t in zip(grads, inputs)))


@mamba_mixer_backward.register_fake
def _(dy, zxbcdt, xBC_conv, y_before_norm, rstd, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads,
      n_groups, d_state, chunk_size, norm_eps, norm, dt_min, dt_max):
    inputs = (zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight)
    return tuple(zxbcdt.new_empty(_EMPTY) if t is None else t.new_empty(t.shape) for t in inputs)


def _setup_context(ctx, inputs, output):
    (zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state, chunk_size, norm_eps,
     norm, dt_min, dt_max) = inputs
    _y, xBC_conv, y_before_norm, rstd = output
    ctx.save_for_backward(zxbcdt, xBC_conv, y_before_norm, rstd, conv_weight, conv_bias, dt_bias, A, D, norm_weight)
    ctx.sizes = (n_heads, n_groups, d_state, chunk_size, norm_eps, norm, dt_min, dt_max)


def _backward(ctx, dy, _dxBC_conv, _dy_before_norm, _drstd):
    zxbcdt, xBC_conv, y_before_norm, rstd, conv_weight, conv_bias, dt_bias, A, D, norm_weight = ctx.saved_tensors
    grads = mamba_mixer_backward(dy, zxbcdt, xBC_conv, y_before_norm, rstd, conv_weight, conv_bias, dt_bias, A, D,
                                 norm_weight, *ctx.sizes)
    inputs = (zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight)
    present = [None if t is None else g for g, t in zip(grads, inputs)]
    return (*present, None, None, None, None, None, None, None, None)


mamba_mixer_forward.register_autograd(_backward, setup_context=_setup_context)


def mamba_mixer_fused(zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state,
                      chunk_size, norm_eps, dt_limit=(0.0, math.inf), norm="mamba_ssm"):
    """y (b, l, d_inner) through the ops above."""
    y, _xBC_conv, _y_before_norm, _rstd = mamba_mixer_forward(
        zxbcdt, conv_weight, conv_bias, dt_bias, A, D, norm_weight, n_heads, n_groups, d_state, chunk_size,
        float(norm_eps), norm, float(dt_limit[0]), float(dt_limit[1]))
    return y
