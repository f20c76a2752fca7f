"""Our Triton causal depthwise conv1d, forward and backward (imports triton: load only on first use).

Why our own: causal-conv1d needs a many-minute CUDA compile (it did not finish in 500 s on the H100), and
F.conv1d with groups=d is slow for this shape. Layout x (b, d, l) with any strides; fp32 accumulation.
Outputs and input gradients follow x's layout: in Mamba-2, x is a channel-last view of the input projection,
and a (b, d, l) output there made the steps around it (the scan's B/C copies, the gradient concatenation before
the backward) work across the layout: about 18 ms of a 242 ms training step of the 1B hybrid on the H100.

Channel-last x (Mamba-2's case) with k <= 4 takes the walk kernels: each program holds BLOCK_D channels and walks
CHUNK positions one row at a time, keeping the last k rows of x (and, in the backward, the last k-1 rows of
dpre = dy * silu'(pre)) in registers. The forward reads each x row once; the backward is one pass that walks
downwards, so dx[t] = sum_s w[k-1-s] * dpre[t+s] finds every dpre it needs already computed and no dpre buffer is
written or read; dweight and dbias are summed per thread and written once per program. The walk backward reads
one dy row a step, so a dy across the layout is first copied into x's layout.

Other layouts take the tiled kernels (so would k > 4, which only a direct call of causal_conv1d_fn can ask for:
the registry gives this backend k <= 4). Forward: one program per (l-block, d-block, batch) tile computes
y at BLOCK_L positions as k shifted loads. Backward, two passes: (1) dpre, the pre-activation recomputed from k
shifted x tiles, stored in x's dtype, plus partial sums of dweight and dbias (reduced by torch: deterministic, no
atomics): looped where k <= 4 (each program walks several l-blocks with one accumulator per tap and sums once at
its end: 1.5x faster than summing per block at the 100M trial's conv), per block otherwise (k + 1 sums over l per
tile); (2) dx from dpre, the forward's taps mirrored. A one-pass tiled backward that kept the 2k-1 shifted x tiles
live to recompute pre at every shift was 1.2-1.6x slower at every tile shape tried on the H100.
The gradient of initial_states touches only k-1 columns and is done in torch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .triton_launch import launch_device, promise_multiple, stride_alignment


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


@triton.jit
def _row(X, INIT, pid_b, offs_d, t, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K: tl.constexpr, HAS_INIT: tl.constexpr):
    """xfull at one position t (a scalar) for channels offs_d: x for 0 <= t < L, initial_states for t < 0."""
    xv = tl.load(X + pid_b * sxb + offs_d * sxd + t * sxl, mask=mask_d & (t >= 0) & (t < L), other=0.0)
    xv = xv.to(tl.float32)
    if HAS_INIT:
        ti = t + (K - 1)
        xv += tl.load(INIT + pid_b * sib + offs_d * sid + ti * sil, mask=mask_d & (t < 0) & (ti >= 0),
                      other=0.0).to(tl.float32)
    return xv


@triton.jit
def _lag_taps(W, BIAS, offs_d, mask_d, swd, swk, K: tl.constexpr, HAS_BIAS: tl.constexpr):
    """The weights by lag, c_s = weight[:, K-1-s] multiplies x[t - s] (0 for s >= K), and the bias (or 0)."""
    zero = tl.zeros(offs_d.shape, dtype=tl.float32)
    c1, c2, c3, bias = zero, zero, zero, zero
    c0 = tl.load(W + offs_d * swd + (K - 1) * swk, mask=mask_d, other=0.0).to(tl.float32)
    if K > 1:
        c1 = tl.load(W + offs_d * swd + (K - 2) * swk, mask=mask_d, other=0.0).to(tl.float32)
    if K > 2:
        c2 = tl.load(W + offs_d * swd + (K - 3) * swk, mask=mask_d, other=0.0).to(tl.float32)
    if K > 3:
        c3 = tl.load(W + offs_d * swd + (K - 4) * swk, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(BIAS + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    return c0, c1, c2, c3, bias


@triton.jit
def _by_lag(c0, c1, c2, c3, v0, v1, v2, v3, K: tl.constexpr):
    """sum_s c_s * v_s over the lags s < K only: a row past the taps could hold an inf that 0 * inf would spread."""
    acc = c0 * v0
    if K > 1:
        acc += c1 * v1
    if K > 2:
        acc += c2 * v2
    if K > 3:
        acc += c3 * v3
    return acc


@triton.jit
def _conv_fwd_walk_kernel(X, W, BIAS, INIT, Y, D, L, sxb, sxd, sxl, swd, swk, sib, sid, sil, syb, syd, syl,
                          K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                          BLOCK_D: tl.constexpr, CHUNK: tl.constexpr, ALIGN: tl.constexpr):
    # channel-last x, k <= 4: each program walks CHUNK positions of BLOCK_D channels one row at a time, keeping the
    # k-1 rows before the current one in registers, so every x row is read once (the tiled kernel re-reads k
    # shifted tiles) and each row's load is issued one step ahead of its use. ALIGN divides the batch and row
    # strides (triton_launch.stride_alignment: vector loads from a slice of 5,144-wide rows)
    sxb, sxl = promise_multiple(sxb, ALIGN), promise_multiple(sxl, ALIGN)
    syb, syl = promise_multiple(syb, ALIGN), promise_multiple(syl, ALIGN)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    c0, c1, c2, c3, bias = _lag_taps(W, BIAS, offs_d, mask_d, swd, swk, K, HAS_BIAS)
    t0 = tl.program_id(0) * CHUNK
    x1 = _row(X, INIT, pid_b, offs_d, t0 - 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    x2 = _row(X, INIT, pid_b, offs_d, t0 - 2, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    x3 = _row(X, INIT, pid_b, offs_d, t0 - 3, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    x_next = _row(X, INIT, pid_b, offs_d, t0, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    for i in range(CHUNK):
        t = t0 + i
        x0 = x_next
        x_next = _row(X, INIT, pid_b, offs_d, t + 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        acc = bias + _by_lag(c0, c1, c2, c3, x0, x1, x2, x3, K)
        if SILU:
            acc = acc * tl.sigmoid(acc)
        tl.store(Y + pid_b * syb + offs_d * syd + t * syl, acc.to(Y.dtype.element_ty), mask=mask_d & (t < L))
        x3, x2, x1 = x2, x1, x0


@triton.jit
def _conv_bwd_walk_kernel(X, W, BIAS, INIT, DY, DX, DW_PART, DB_PART, D, L, n_chunks,
                          sxb, sxd, sxl, swd, swk, sib, sid, sil, sgb, sgd, sgl, sdb, sdd, sdl,
                          K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                          BLOCK_D: tl.constexpr, CHUNK: tl.constexpr, ALIGN: tl.constexpr):
    # channel-last x and dy, k <= 4, one pass: each program walks its CHUNK positions downwards, from the k-1
    # positions past its end (their dpre feeds dx at the chunk's last positions), recomputing the pre-activation
    # from the last k rows of x it holds, and keeps dpre = dy * silu'(pre) of the k-1 positions above in registers:
    # dx[t] = sum_s c_s dpre[t + s] needs no dpre buffer, and dweight / dbias are summed per thread, once per
    # program. Reads x and dy once, writes dx once. ALIGN divides the batch and row strides (as in the forward).
    sxb, sxl = promise_multiple(sxb, ALIGN), promise_multiple(sxl, ALIGN)
    sgb, sgl = promise_multiple(sgb, ALIGN), promise_multiple(sgl, ALIGN)
    sdb, sdl = promise_multiple(sdb, ALIGN), promise_multiple(sdl, ALIGN)
    pid_c = tl.program_id(0)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    c0, c1, c2, c3, bias = _lag_taps(W, BIAS, offs_d, mask_d, swd, swk, K, HAS_BIAS)
    t_end = (pid_c + 1) * CHUNK  # this program's positions: [t_end - CHUNK, t_end)
    top = t_end + K - 2
    xa = _row(X, INIT, pid_b, offs_d, top, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)  # x[t]
    xb = _row(X, INIT, pid_b, offs_d, top - 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)  # x[t-1]
    xc = _row(X, INIT, pid_b, offs_d, top - 2, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)  # x[t-2]
    x_next = _row(X, INIT, pid_b, offs_d, top - 3, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    dy_next = tl.load(DY + pid_b * sgb + offs_d * sgd + top * sgl, mask=mask_d & (top < L), other=0.0)
    # dpre at t+1, t+2, t+3 (0 past L). Three separate zeros: Triton carries a variable through the loop only if
    # the loop leaves it bound to another value than before, so with one shared zero the shift g3, g2 = g2, g1
    # would look unchanged and g2 and g3 would stay 0 in the compiled kernel (not in the interpreter)
    g1 = tl.zeros((BLOCK_D,), dtype=tl.float32)
    g2 = tl.zeros((BLOCK_D,), dtype=tl.float32)
    g3 = tl.zeros((BLOCK_D,), dtype=tl.float32)
    zero = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dc0, dc1, dc2, dc3, db = zero, zero, zero, zero, zero  # dweight by lag, dbias
    for i in range(CHUNK + K - 1):
        t = top - i
        xd, g = x_next, dy_next.to(tl.float32)  # x[t-3], dy[t]
        x_next = _row(X, INIT, pid_b, offs_d, t - 4, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        dy_next = tl.load(DY + pid_b * sgb + offs_d * sgd + (t - 1) * sgl, mask=mask_d & (t >= 1) & (t - 1 < L),
                          other=0.0)
        if SILU:
            a = bias + _by_lag(c0, c1, c2, c3, xa, xb, xc, xd, K)
            sg = tl.sigmoid(a)
            g = g * sg * (1.0 + a * (1.0 - sg))
        own = t < t_end
        dx = _by_lag(c0, c1, c2, c3, g, g1, g2, g3, K)
        tl.store(DX + pid_b * sdb + offs_d * sdd + t * sdl, dx.to(DX.dtype.element_ty), mask=mask_d & own & (t < L))
        g_own = tl.where(own, g, 0.0)
        dc0 += g_own * xa
        if K > 1:
            dc1 += g_own * xb
        if K > 2:
            dc2 += g_own * xc
        if K > 3:
            dc3 += g_own * xd
        db += g_own
        g3, g2, g1 = g2, g1, g
        xa, xb, xc = xb, xc, xd
    row = (pid_b * n_chunks + pid_c) * D + offs_d  # this program's row of the partial-sum buffers
    tl.store(DW_PART + row * K + (K - 1), dc0, mask=mask_d)
    if K > 1:
        tl.store(DW_PART + row * K + (K - 2), dc1, mask=mask_d)
    if K > 2:
        tl.store(DW_PART + row * K + (K - 3), dc2, mask=mask_d)
    if K > 3:
        tl.store(DW_PART + row * K + (K - 4), dc3, mask=mask_d)
    if HAS_BIAS:
        tl.store(DB_PART + row, db, mask=mask_d)


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


def _pow2_at_least_16(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


def _tiles(kernel: str, d: int, l: int, channel_last: bool) -> Tiles:
    """The tiled kernels' tile shape per kernel ("fwd", "dpre", "dx") and layout (channel-last x takes them only
    where the walk kernels do not apply), from sweeps on the H100 and H200 (bench/RESULTS.md): long in the
    contiguous dimension; the dpre pass, which also reduces over l for dweight, wants squarer tiles.
    A dpre entry with a fourth number (l-blocks per program) takes the looped kernel where k <= LOOPED_MAX_K."""
    # dpre: the looped kernel, fwd+bwd at the 100M trial's conv (b16 d3584 L2048, H100, 2026-12-07): channel-last
    # 1.42 ms with (128, 16, 4, 16) vs 2.16 ms for the per-block kernel's (32, 64, 4); contiguous 0.85 vs 1.02 ms.
    # In the trial's whole step the gain was smaller: dpre 8.48 -> 7.19 ms for its 7 Mamba layers (H100, RESULTS.md)
    if channel_last:
        tiles = {"fwd": (128, 16, 4), "dpre": (128, 16, 4, 16), "dx": (128, 16, 4)}
    else:
        tiles = {"fwd": (16, 256, 4), "dpre": (16, 128, 8, 4), "dx": (16, 256, 4)}
    block_d, block_l, warps, *steps = tiles[kernel]
    return Tiles(min(block_d, _pow2_at_least_16(d)), min(block_l, _pow2_at_least_16(l)), warps, *steps)


def _channel_last(x: torch.Tensor) -> bool:
    return x.stride(1) == 1 and x.shape[1] > 1


def _empty_in_layout_of(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (b, d, l) tensor, channel-last when x is."""
    b, d, l = x.shape
    if _channel_last(x):
        return torch.empty((b, l, d), dtype=x.dtype, device=x.device).transpose(1, 2)
    return torch.empty((b, d, l), dtype=x.dtype, device=x.device)


def _pointers(x, weight, bias, initial_states):
    """The kernels' first four arguments, a stand-in for an absent bias or initial_states (never read then)."""
    return x, weight, bias if bias is not None else weight, initial_states if initial_states is not None else x


def _strides3(t):
    return (t.stride(0), t.stride(1), t.stride(2)) if t is not None else (0, 0, 0)


class Walk(NamedTuple):
    block_d: int  # channels a program holds
    chunk: int  # positions a program walks
    warps: int


WALK_MAX_K = 4  # the walk kernels hold the last k rows of x (and k-1 of dpre) in registers, one variable each
# the walk kernels' tiles that bench_kernels.py sweeps and the GPU parity tests run: (block_d, chunk, warps); a
# thread holds block_d / (32 x warps) channels (4 with the default (128, 64, 1): an 8-byte bf16 load a row)
WALK_CANDIDATES = [(256, 64, 1), (256, 32, 1), (256, 128, 1), (128, 64, 1), (512, 64, 2), (512, 32, 2),
                   (256, 64, 2), (1024, 64, 4), (128, 32, 1)]


def _walk(kernel: str, d: int, l: int) -> Walk | None:
    """The walk kernels' tiles ("fwd", "bwd") for channel-last x with k <= WALK_MAX_K. Benches and tests replace
    this function with one that returns None to run the tiled kernels (the baseline) for that case."""
    # the sweep at the 100M trial's conv (b16 d3584 L2048, a slice of 5144-wide rows, H100, 2026-12-07): fwd 0.228 ms
    # with (128, 64, 1) against 0.241 for (256, 64, 1) and 0.377 for the tiled kernel; fwd+bwd 1.035 ms against 1.080
    # and 1.447 (bench/RESULTS.md). In that trial's step the conv fell from 11.0 to 4.5 ms (with (256, 64, 1))
    block_d, chunk, warps = {"fwd": (128, 64, 1), "bwd": (128, 64, 1)}[kernel]
    return Walk(min(block_d, _pow2_at_least_16(d)), min(chunk, _pow2_at_least_16(l)), warps)


def _walk_alignment(*channel_last: torch.Tensor) -> int:
    """What the walk kernels may promise about their (b, d, l) tensors' batch and position strides."""
    return stride_alignment(*(stride for t in channel_last for stride in (t.stride(0), t.stride(2))))


def conv_forward(x, weight, bias, initial_states, silu):
    """y (b, d, l) in x's layout; no autograd (the autograd.Function below and the fused Mamba mixer call it)."""
    b, d, l = x.shape
    k = weight.shape[1]
    y = _empty_in_layout_of(x)
    walk = _walk("fwd", d, l) if _channel_last(x) and k <= WALK_MAX_K else None
    args = (*_pointers(x, weight, bias, initial_states), y, d, l, *_strides3(x), weight.stride(0), weight.stride(1),
            *_strides3(initial_states), *_strides3(y))
    flags = dict(K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=silu)
    with launch_device(x):
        if walk is not None:
            grid = (triton.cdiv(l, walk.chunk), triton.cdiv(d, walk.block_d), b)
            _conv_fwd_walk_kernel[grid](*args, **flags, BLOCK_D=walk.block_d, CHUNK=walk.chunk,
                                        ALIGN=_walk_alignment(x, y), num_warps=walk.warps)
        else:
            tiles = _tiles("fwd", d, l, _channel_last(x))
            grid = (triton.cdiv(l, tiles.block_l), triton.cdiv(d, tiles.block_d), b)
            _conv_fwd_kernel[grid](*args, **flags, BLOCK_D=tiles.block_d, BLOCK_L=tiles.block_l,
                                   num_warps=tiles.warps)
    return y


def conv_backward(x, weight, bias, initial_states, dy, silu, dx=None):
    """(dx, dweight, dbias or None) without the initial states' gradient; no autograd. dx, when given, is written
    in place (any (b, d, l) view: the fused Mamba mixer passes a slice of its input projection's gradient)."""
    b, d, l = x.shape
    k = weight.shape[1]
    walk = _walk("bwd", d, l) if _channel_last(x) and k <= WALK_MAX_K else None
    if walk is not None and not _channel_last(dy):
        # the walk reads one dy row a step: a compiled step hands dy over (b, d, l)-contiguous (H100, 2026-12-07),
        # so it is copied into x's layout first (inductor can write it there directly from dy's producer)
        dy = dy.transpose(1, 2).contiguous().transpose(1, 2)
    if dx is None:
        dx = _empty_in_layout_of(x)
    with launch_device(x):
        if walk is not None:
            dw_part, db_part = _backward_walk(x, weight, bias, initial_states, dy, silu, walk, dx)
        else:
            dw_part, db_part = _backward_tiled(x, weight, bias, initial_states, dy, silu, dx)
    dweight = dw_part.sum(0).to(weight.dtype)
    return dx, dweight, db_part.sum(0).to(bias.dtype) if bias is not None else None


class _CausalConv1dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, initial_states, silu):
        ctx.save_for_backward(x, weight, bias, initial_states)
        ctx.silu = silu
        return conv_forward(x, weight, bias, initial_states, silu)

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, initial_states = ctx.saved_tensors
        dx, dweight, dbias = conv_backward(x, weight, bias, initial_states, dy, ctx.silu)
        dinit = _initial_states_grad(x, weight, bias, initial_states, dy, ctx.silu) if initial_states is not None else None
        return dx, dweight, dbias, dinit, None


def _partial_sums(x, k, rows, has_bias):
    """fp32 buffers for per-program partial sums of dweight (rows, d, k) and dbias (rows, d), reduced by torch."""
    d = x.shape[1]
    dw_part = torch.empty((rows, d, k), dtype=torch.float32, device=x.device)
    return dw_part, torch.empty((rows, d), dtype=torch.float32, device=x.device) if has_bias else None


def _backward_walk(x, weight, bias, initial_states, dy, silu, walk: Walk, dx):
    """Writes dx; returns dweight's and dbias's per-program partial sums."""
    b, d, l = x.shape
    k = weight.shape[1]
    n_chunks = triton.cdiv(l, walk.chunk)
    dw_part, db_part = _partial_sums(x, k, b * n_chunks, bias is not None)
    _conv_bwd_walk_kernel[(n_chunks, triton.cdiv(d, walk.block_d), b)](
        *_pointers(x, weight, bias, initial_states), dy, dx, dw_part, db_part if db_part is not None else dw_part,
        d, l, n_chunks,
        *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states), *_strides3(dy),
        *_strides3(dx), K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=silu,
        BLOCK_D=walk.block_d, CHUNK=walk.chunk, ALIGN=_walk_alignment(x, dy, dx), num_warps=walk.warps,
    )
    return dw_part, db_part


def _backward_tiled(x, weight, bias, initial_states, dy, silu, dx):
    # dy is read in whatever layout it comes: copying a (b, d, l)-contiguous dy into a channel-last x's layout
    # first cost more than reading it across (2.83 vs 2.10 ms fwd+bwd at the 100M trial's conv, H200)
    b, d, l = x.shape
    k = weight.shape[1]
    channel_last = _channel_last(x)
    tiles, dx_tiles = _tiles("dpre", d, l, channel_last), _tiles("dx", d, l, channel_last)
    looped = tiles.steps > 0 and k <= LOOPED_MAX_K
    n_groups = triton.cdiv(triton.cdiv(l, tiles.block_l), tiles.steps if looped else 1)  # programs along l
    dpre = _empty_in_layout_of(x)
    dw_part, db_part = _partial_sums(x, k, b * n_groups, bias is not None)
    args = (*_pointers(x, weight, bias, initial_states),
            dy, dpre, dw_part, db_part if db_part is not None else dw_part, d, l, n_groups,
            *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states), *_strides3(dy),
            *_strides3(dpre))
    flags = dict(K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=silu,
                 BLOCK_D=tiles.block_d, BLOCK_L=tiles.block_l, num_warps=tiles.warps)
    grid = (n_groups, triton.cdiv(d, tiles.block_d), b)
    if looped:
        _conv_bwd_dpre_looped_kernel[grid](*args, STEPS=tiles.steps, **flags)
    else:
        _conv_bwd_dpre_kernel[grid](*args, **flags)
    _conv_bwd_dx_kernel[(triton.cdiv(l, dx_tiles.block_l), triton.cdiv(d, dx_tiles.block_d), b)](
        dpre, weight, dx, d, l, *_strides3(dpre), weight.stride(0), weight.stride(1), *_strides3(dx),
        K=k, BLOCK_D=dx_tiles.block_d, BLOCK_L=dx_tiles.block_l, num_warps=dx_tiles.warps,
    )
    return dw_part, db_part


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
