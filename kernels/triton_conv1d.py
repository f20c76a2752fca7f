"""Our Triton causal depthwise conv1d, forward and backward (imports triton: load only on first use).

Why our own: causal-conv1d needs a many-minute CUDA compile (it did not finish in 500 s on the H100), and
F.conv1d with groups=d is slow for this shape. Layout x (b, d, l) with any strides; fp32 accumulation.
Outputs and input gradients follow x's layout: in Mamba-2, x is a channel-last view of the input projection,
and a (b, d, l) output there made the steps around it (the scan's B/C copies, the gradient concatenation before
the backward) work across the layout: about 18 ms of a 242 ms training step of the 1B hybrid on the H100.

Forward: one program per (l-block, d-block, batch) tile computes y at BLOCK_L positions as k shifted loads.
Backward, two passes: (1) dpre = dy * silu'(pre), the pre-activation recomputed from k shifted x tiles, stored
in x's dtype, plus partial sums of dweight and dbias (reduced by torch: deterministic, no atomics): looped where
k <= 4 (each program walks several l-blocks with one accumulator per tap and sums once at its end: 1.5x faster
than summing per block at the 100M trial's conv), per block otherwise (k + 1 sums over l per tile);
(2) dx[t] = sum_s w[k-1-s] * dpre[t+s], the forward's taps mirrored. A one-pass backward that kept the 2k-1
shifted x tiles live to recompute pre at every shift was 1.2-1.6x slower at every tile shape tried on the H100.
The gradient of initial_states touches only k-1 columns and is done in torch.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import triton
import triton.language as tl


@triton.jit
def _load_x(X, INIT, pid_b, offs_d, t, mask_d, L, sxb, sxd, sxl, sib, sid, sil,
            K: tl.constexpr, HAS_INIT: tl.constexpr):
    """xfull at positions t (BLOCK_L,) for channels offs_d: x for 0 <= t < L, initial_states for t < 0."""
    m = mask_d[:, None] & ((t >= 0) & (t < L))[None, :]
    xv = tl.load(X + pid_b * sxb + offs_d[:, None] * sxd + t[None, :] * sxl, mask=m, other=0.0).to(tl.float32)
    if HAS_INIT:
        ti = t + (K - 1)
        mi = mask_d[:, None] & ((t < 0) & (ti >= 0))[None, :]
        xv += tl.load(INIT + pid_b * sib + offs_d[:, None] * sid + ti[None, :] * sil, mask=mi,
                      other=0.0).to(tl.float32)
    return xv


@triton.jit
def _pre_activation(X, W, BIAS, INIT, pid_b, offs_d, pos, mask_d, L, sxb, sxd, sxl, swd, swk, sib, sid, sil,
                    K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr,
                    BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    acc = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    for j in tl.static_range(K):
        xv = _load_x(X, INIT, pid_b, offs_d, pos - (K - 1) + j, mask_d, L, sxb, sxd, sxl, sib, sid, sil,
                     K, HAS_INIT)
        wv = tl.load(W + offs_d * swd + j * swk, mask=mask_d, other=0.0).to(tl.float32)
        acc += wv[:, None] * xv
    if HAS_BIAS:
        acc += tl.load(BIAS + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    return acc


@triton.jit
def _tile(D, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    """This program's tile: grid (l-blocks, d-blocks, batch)."""
    pid_l = tl.program_id(0)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    return pid_l, pid_b, offs_d, offs_l, offs_d < D


@triton.jit
def _conv_fwd_kernel(X, W, BIAS, INIT, Y, D, L, sxb, sxd, sxl, swd, swk, sib, sid, sil, syb, syd, syl,
                     K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    pid_l, pid_b, offs_d, offs_l, mask_d = _tile(D, BLOCK_D, BLOCK_L)
    acc = _pre_activation(X, W, BIAS, INIT, pid_b, offs_d, offs_l, mask_d, L, sxb, sxd, sxl, swd, swk,
                          sib, sid, sil, K, HAS_BIAS, HAS_INIT, BLOCK_D, BLOCK_L)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m = mask_d[:, None] & (offs_l < L)[None, :]
    tl.store(Y + pid_b * syb + offs_d[:, None] * syd + offs_l[None, :] * syl, acc.to(Y.dtype.element_ty), mask=m)


@triton.jit
def _conv_bwd_dpre_kernel(X, W, BIAS, INIT, DY, DPRE, DW_PART, DB_PART, D, L, n_lblocks,
                          sxb, sxd, sxl, swd, swk, sib, sid, sil, sgb, sgd, sgl, spb, spd, spl,
                          K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                          BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    # pass 1 of 2: dpre = dy * silu'(pre) at this tile's positions, and its share of dweight / dbias
    pid_l, pid_b, offs_d, offs_l, mask_d = _tile(D, BLOCK_D, BLOCK_L)
    m = mask_d[:, None] & (offs_l < L)[None, :]
    g = tl.load(DY + pid_b * sgb + offs_d[:, None] * sgd + offs_l[None, :] * sgl, mask=m, other=0.0).to(tl.float32)
    if SILU:
        a = _pre_activation(X, W, BIAS, INIT, pid_b, offs_d, offs_l, mask_d, L, sxb, sxd, sxl, swd, swk,
                            sib, sid, sil, K, HAS_BIAS, HAS_INIT, BLOCK_D, BLOCK_L)
        sg = tl.sigmoid(a)
        g = g * sg * (1.0 + a * (1.0 - sg))
    tl.store(DPRE + pid_b * spb + offs_d[:, None] * spd + offs_l[None, :] * spl, g.to(DPRE.dtype.element_ty), mask=m)
    part = (pid_b * n_lblocks + pid_l) * D  # row of this tile in the partial-sum buffers
    for j in tl.static_range(K):  # dweight[:, j] = sum_t dpre[t] * xfull[t - (K-1) + j]; the taps are L1/L2 hits
        xj = _load_x(X, INIT, pid_b, offs_d, offs_l - (K - 1) + j, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K,
                     HAS_INIT)
        tl.store(DW_PART + (part + offs_d) * K + j, tl.sum(g * xj, axis=1), mask=mask_d)
    if HAS_BIAS:
        tl.store(DB_PART + part + offs_d, tl.sum(g, axis=1), mask=mask_d)


@triton.jit
def _conv_bwd_dpre_looped_kernel(X, W, BIAS, INIT, DY, DPRE, DW_PART, DB_PART, D, L, n_groups,
                                 sxb, sxd, sxl, swd, swk, sib, sid, sil, sgb, sgd, sgl, spb, spd, spl,
                                 K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                                 BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, STEPS: tl.constexpr):
    # pass 1 of 2 for K <= 4: as _conv_bwd_dpre_kernel, but each program walks STEPS l-blocks and keeps one
    # element-wise accumulator per tap, so the cross-thread sums over l (and the partial rows they write) happen
    # once per STEPS blocks instead of K + 1 times per block; each shifted x tile is loaded once per block and
    # serves both the recomputed pre-activation and its tap's dweight
    pid_g = tl.program_id(0)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    column = tl.zeros((BLOCK_D, 1), dtype=tl.float32)
    w0, w1, w2, w3, bias = column, column, column, column, column  # taps past K stay 0
    w0 = tl.load(W + offs_d * swd, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    if K > 1:
        w1 = tl.load(W + offs_d * swd + swk, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    if K > 2:
        w2 = tl.load(W + offs_d * swd + 2 * swk, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    if K > 3:
        w3 = tl.load(W + offs_d * swd + 3 * swk, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    if HAS_BIAS:
        bias = tl.load(BIAS + offs_d, mask=mask_d, other=0.0).to(tl.float32)[:, None]
    zero = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    dw0, dw1, dw2, dw3, db = zero, zero, zero, zero, zero
    x1, x2, x3 = zero, zero, zero
    for step in range(STEPS):
        offs_l = (pid_g * STEPS + step) * BLOCK_L + tl.arange(0, BLOCK_L)
        m = mask_d[:, None] & (offs_l < L)[None, :]
        first = offs_l - (K - 1)  # tap j reads x at first + j
        x0 = _load_x(X, INIT, pid_b, offs_d, first, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if K > 1:
            x1 = _load_x(X, INIT, pid_b, offs_d, first + 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if K > 2:
            x2 = _load_x(X, INIT, pid_b, offs_d, first + 2, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if K > 3:
            x3 = _load_x(X, INIT, pid_b, offs_d, first + 3, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        g = tl.load(DY + pid_b * sgb + offs_d[:, None] * sgd + offs_l[None, :] * sgl, mask=m,
                    other=0.0).to(tl.float32)
        if SILU:
            a = w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3 + bias
            sg = tl.sigmoid(a)
            g = g * sg * (1.0 + a * (1.0 - sg))
        tl.store(DPRE + pid_b * spb + offs_d[:, None] * spd + offs_l[None, :] * spl, g.to(DPRE.dtype.element_ty),
                 mask=m)
        dw0 += g * x0
        dw1 += g * x1
        dw2 += g * x2
        dw3 += g * x3
        db += g
    row = (pid_b * n_groups + pid_g) * D + offs_d  # this program's row of the partial-sum buffers
    tl.store(DW_PART + row * K, tl.sum(dw0, axis=1), mask=mask_d)
    if K > 1:
        tl.store(DW_PART + row * K + 1, tl.sum(dw1, axis=1), mask=mask_d)
    if K > 2:
        tl.store(DW_PART + row * K + 2, tl.sum(dw2, axis=1), mask=mask_d)
    if K > 3:
        tl.store(DW_PART + row * K + 3, tl.sum(dw3, axis=1), mask=mask_d)
    if HAS_BIAS:
        tl.store(DB_PART + row, tl.sum(db, axis=1), mask=mask_d)


@triton.jit
def _conv_bwd_dx_kernel(DPRE, W, DX, D, L, spb, spd, spl, swd, swk, sdb, sdd, sdl,
                        K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    # pass 2 of 2: dx[t] = sum_s w[K-1-s] * dpre[t+s], the forward's taps mirrored (dpre is 0 past the end)
    pid_l, pid_b, offs_d, offs_l, mask_d = _tile(D, BLOCK_D, BLOCK_L)
    acc = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    for s in tl.static_range(K):
        pos = offs_l + s
        g = tl.load(DPRE + pid_b * spb + offs_d[:, None] * spd + pos[None, :] * spl,
                    mask=mask_d[:, None] & (pos < L)[None, :], other=0.0).to(tl.float32)
        w_s = tl.load(W + offs_d * swd + (K - 1 - s) * swk, mask=mask_d, other=0.0).to(tl.float32)
        acc += w_s[:, None] * g
    m = mask_d[:, None] & (offs_l < L)[None, :]
    tl.store(DX + pid_b * sdb + offs_d[:, None] * sdd + offs_l[None, :] * sdl, acc.to(DX.dtype.element_ty), mask=m)


class Tiles(NamedTuple):
    block_d: int
    block_l: int
    warps: int
    steps: int = 0  # dpre only: l-blocks per program of the looped kernel; 0: the per-block kernel


LOOPED_MAX_K = 4  # the looped dpre kernel keeps one accumulator per tap; wider convs take the per-block kernel
# the looped dpre kernel's tiles that bench_kernels.py sweeps and the GPU parity tests run, so a sweep can make any
# of them the default: (block_d, block_l, warps, l-blocks per program). With 5 accumulators and 4 x tiles live, 8
# elements a thread fit the registers and 16 may spill: the list has both.
DPRE_LOOPED_CANDIDATES = [(128, 16, 8, 16), (128, 16, 8, 4), (128, 16, 4, 16), (64, 16, 4, 16), (64, 32, 8, 8),
                          (128, 32, 8, 8), (32, 64, 8, 4), (256, 8, 8, 32), (16, 128, 8, 4), (16, 256, 8, 2),
                          (32, 128, 8, 2)]


def _tiles(kernel: str, d: int, l: int, channel_last: bool) -> Tiles:
    """Tile shape per kernel ("fwd", "dpre", "dx") and layout, from sweeps on the H100 and H200 (bench/RESULTS.md):
    long in the contiguous dimension; the dpre pass, which also reduces over l for dweight, wants squarer tiles.
    A dpre entry with a fourth number (l-blocks per program) takes the looped kernel where k <= LOOPED_MAX_K."""
    # dpre: the looped kernel, fwd+bwd at the 100M trial's conv (b16 d3584 L2048, H100, 2026-12-07): channel-last
    # 1.42 ms with (128, 16, 4, 16) vs 2.16 ms for the per-block kernel's (32, 64, 4); contiguous 0.85 vs 1.02 ms.
    # In the trial's whole step the gain was smaller: dpre 8.48 -> 7.19 ms for its 7 Mamba layers (H100, RESULTS.md)
    if channel_last:
        tiles = {"fwd": (128, 16, 4), "dpre": (128, 16, 4, 16), "dx": (128, 16, 4)}
    else:
        tiles = {"fwd": (16, 256, 4), "dpre": (16, 128, 8, 4), "dx": (16, 256, 4)}
    block_d, block_l, warps, *steps = tiles[kernel]
    pow2 = lambda n: max(16, triton.next_power_of_2(n))  # noqa: E731
    return Tiles(min(block_d, pow2(d)), min(block_l, pow2(l)), warps, *steps)


def _channel_last(x: torch.Tensor) -> bool:
    return x.stride(1) == 1 and x.shape[1] > 1


def _empty_in_layout_of(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (b, d, l) tensor, channel-last when x is."""
    b, d, l = x.shape
    if _channel_last(x):
        return torch.empty((b, l, d), dtype=x.dtype, device=x.device).transpose(1, 2)
    return torch.empty((b, d, l), dtype=x.dtype, device=x.device)


def _on_device_of(x: torch.Tensor):
    """Launch on x's GPU; CPU tensors only reach here under Triton's interpreter (TRITON_INTERPRET=1, tests)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _strides3(t):
    return (t.stride(0), t.stride(1), t.stride(2)) if t is not None else (0, 0, 0)


class _CausalConv1dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, initial_states, silu):
        b, d, l = x.shape
        k = weight.shape[1]
        y = _empty_in_layout_of(x)
        tiles = _tiles("fwd", d, l, _channel_last(x))
        grid = (triton.cdiv(l, tiles.block_l), triton.cdiv(d, tiles.block_d), b)
        with _on_device_of(x):
            _conv_fwd_kernel[grid](
                x, weight, bias if bias is not None else weight, initial_states if initial_states is not None else x,
                y, d, l, *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states),
                *_strides3(y), K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=silu,
                BLOCK_D=tiles.block_d, BLOCK_L=tiles.block_l, num_warps=tiles.warps,
            )
        ctx.save_for_backward(x, weight, bias, initial_states)
        ctx.silu = silu
        return y

    @staticmethod
    def backward(ctx, dy):
        # dy is read in whatever layout it comes: copying a (b, d, l)-contiguous dy into a channel-last x's layout
        # first cost more than reading it across (2.83 vs 2.10 ms fwd+bwd at the 100M trial's conv, H200)
        x, weight, bias, initial_states = ctx.saved_tensors
        b, d, l = x.shape
        k = weight.shape[1]
        channel_last = _channel_last(x)
        tiles, dx_tiles = _tiles("dpre", d, l, channel_last), _tiles("dx", d, l, channel_last)
        looped = tiles.steps > 0 and k <= LOOPED_MAX_K
        n_groups = triton.cdiv(triton.cdiv(l, tiles.block_l), tiles.steps if looped else 1)  # programs along l
        dpre, dx = _empty_in_layout_of(x), _empty_in_layout_of(x)
        dw_part = torch.empty((b * n_groups, d, k), dtype=torch.float32, device=x.device)
        db_part = torch.empty((b * n_groups, d), dtype=torch.float32, device=x.device) if bias is not None else None
        args = (x, weight, bias if bias is not None else weight, initial_states if initial_states is not None else x,
                dy, dpre, dw_part, db_part if db_part is not None else dw_part, d, l, n_groups,
                *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states), *_strides3(dy),
                *_strides3(dpre))
        flags = dict(K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=ctx.silu,
                     BLOCK_D=tiles.block_d, BLOCK_L=tiles.block_l, num_warps=tiles.warps)
        with _on_device_of(x):
            grid = (n_groups, triton.cdiv(d, tiles.block_d), b)
            if looped:
                _conv_bwd_dpre_looped_kernel[grid](*args, STEPS=tiles.steps, **flags)
            else:
                _conv_bwd_dpre_kernel[grid](*args, **flags)
            _conv_bwd_dx_kernel[(triton.cdiv(l, dx_tiles.block_l), triton.cdiv(d, dx_tiles.block_d), b)](
                dpre, weight, dx, d, l, *_strides3(dpre), weight.stride(0), weight.stride(1), *_strides3(dx),
                K=k, BLOCK_D=dx_tiles.block_d, BLOCK_L=dx_tiles.block_l, num_warps=dx_tiles.warps,
            )
        dweight = dw_part.sum(0).to(weight.dtype)
        dbias = db_part.sum(0).to(bias.dtype) if bias is not None else None
        dinit = _initial_states_grad(x, weight, bias, initial_states, dy, ctx.silu) if initial_states is not None else None
        return dx, dweight, dbias, dinit, None


def _initial_states_grad(x, weight, bias, initial_states, dy, silu):
    """dinit[:, :, i] = sum_{j <= i} weight[:, j] * dpre[:, :, i - j]: only the first k-1 outputs matter."""
    k = weight.shape[1]
    head = min(k - 1, x.shape[-1])
    w = weight.float()
    g = dy[..., :head].float()
    if silu:
        xfull = torch.cat([initial_states.float(), x[..., :head].float()], dim=-1)
        pre = sum(w[:, j, None] * xfull[..., j : j + head] for j in range(k))
        if bias is not None:
            pre = pre + bias.float()[:, None]
        sg = torch.sigmoid(pre)
        g = g * sg * (1 + pre * (1 - sg))
    dinit = torch.zeros_like(initial_states, dtype=torch.float32)
    for i in range(k - 1):
        for j in range(i + 1):
            if i - j < head:
                dinit[..., i] += w[:, j] * g[..., i - j]
    return dinit.to(initial_states.dtype)


def causal_conv1d_fn(x, weight, bias=None, initial_states=None, silu=False):
    """x (b, d, l), weight (d, k), bias (d,), initial_states (b, d, k-1) -> y (b, d, l)."""
    if initial_states is not None:
        initial_states = initial_states.to(x.dtype)
    return _CausalConv1dFn.apply(x, weight, bias, initial_states, silu)
