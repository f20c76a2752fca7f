"""Our Triton causal depthwise conv1d, forward and backward (imports triton: load only on first use).

Why our own: causal-conv1d needs a many-minute CUDA compile (it did not finish in 500 s on the H100), and
F.conv1d with groups=d is slow for this shape. Layout x (b, d, l) with any strides; fp32 accumulation.

Forward: one program per (l-block, d-block, batch) tile computes y at BLOCK_L positions as k shifted loads.
Backward: dpre = dy * silu'(pre) is needed at positions t..t+k-1 for dx[t]; rather than writing dpre to
memory (an extra fp32 tensor round trip), each program recomputes the pre-activation at the k shifts from
the 2k-1 shifted x tiles it loads once (k <= 4, as causal-conv1d; a first version reloaded k*k tiles and its
backward ran at 0.97 ms on the benchmark shape, load-instruction bound). Weight and bias gradients are written as per-tile partial sums
and reduced by torch (deterministic, no atomics). The gradient of initial_states touches only k-1 columns
and is done in torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
def _conv_fwd_kernel(X, W, BIAS, INIT, Y, D, L, sxb, sxd, sxl, swd, swk, sib, sid, sil, syb, syd, syl,
                     K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    pid_l = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_d = offs_d < D
    acc = _pre_activation(X, W, BIAS, INIT, pid_b, offs_d, offs_l, mask_d, L, sxb, sxd, sxl, swd, swk,
                          sib, sid, sil, K, HAS_BIAS, HAS_INIT, BLOCK_D, BLOCK_L)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m = mask_d[:, None] & (offs_l < L)[None, :]
    tl.store(Y + pid_b * syb + offs_d[:, None] * syd + offs_l[None, :] * syl, acc.to(Y.dtype.element_ty), mask=m)


@triton.jit
def _pick(m: tl.constexpr, xm3, xm2, xm1, x0, xp1, xp2, xp3):
    """The tap tile at shift m in -3..3 (m is a compile-time constant: no runtime indexing)."""
    r = x0
    if m == -3:
        r = xm3
    if m == -2:
        r = xm2
    if m == -1:
        r = xm1
    if m == 1:
        r = xp1
    if m == 2:
        r = xp2
    if m == 3:
        r = xp3
    return r


@triton.jit
def _conv_bwd_kernel(X, W, BIAS, INIT, DY, DX, DW_PART, DB_PART, D, L, n_lblocks,
                     sxb, sxd, sxl, swd, swk, sib, sid, sil, sgb, sgd, sgl, sdb, sdd, sdl,
                     K: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_INIT: tl.constexpr, SILU: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
    # dx[t] = sum_s w[K-1-s] * dpre[t+s], dpre = dy * silu'(pre). pre at the K shifts t+s needs xfull at
    # shifts -(K-1)..K-1 only: load those 2K-1 tiles once (K <= 4) instead of K*K times.
    pid_l = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_b = tl.program_id(2).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_l = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    mask_d = offs_d < D
    zero = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
    x0 = _load_x(X, INIT, pid_b, offs_d, offs_l, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    xm1 = zero
    xm2 = zero
    xm3 = zero
    xp1 = zero
    xp2 = zero
    xp3 = zero
    if K >= 2:
        xm1 = _load_x(X, INIT, pid_b, offs_d, offs_l - 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if SILU:
            xp1 = _load_x(X, INIT, pid_b, offs_d, offs_l + 1, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    if K >= 3:
        xm2 = _load_x(X, INIT, pid_b, offs_d, offs_l - 2, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if SILU:
            xp2 = _load_x(X, INIT, pid_b, offs_d, offs_l + 2, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    if K >= 4:
        xm3 = _load_x(X, INIT, pid_b, offs_d, offs_l - 3, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
        if SILU:
            xp3 = _load_x(X, INIT, pid_b, offs_d, offs_l + 3, mask_d, L, sxb, sxd, sxl, sib, sid, sil, K, HAS_INIT)
    if HAS_BIAS:
        bias = tl.load(BIAS + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    part = (pid_b * n_lblocks + pid_l) * D  # row of this tile in the partial-sum buffers
    dx = zero
    for s in tl.static_range(K):
        pos = offs_l + s
        valid = mask_d[:, None] & (pos < L)[None, :]
        g = tl.load(DY + pid_b * sgb + offs_d[:, None] * sgd + pos[None, :] * sgl, mask=valid,
                    other=0.0).to(tl.float32)
        if SILU:
            a = zero
            for i in tl.static_range(K):
                wi = tl.load(W + offs_d * swd + i * swk, mask=mask_d, other=0.0).to(tl.float32)
                a += wi[:, None] * _pick(s + i - (K - 1), xm3, xm2, xm1, x0, xp1, xp2, xp3)
            if HAS_BIAS:
                a += bias[:, None]
            sg = tl.sigmoid(a)
            g = g * sg * (1.0 + a * (1.0 - sg))
        w_s = tl.load(W + offs_d * swd + (K - 1 - s) * swk, mask=mask_d, other=0.0).to(tl.float32)
        dx += w_s[:, None] * g
        if s == 0:
            # this tile's share of dweight[:, j] = sum_t dpre[t] * xfull[t - (K-1) + j] and of dbias
            for j in tl.static_range(K):
                xj = _pick(j - (K - 1), xm3, xm2, xm1, x0, xp1, xp2, xp3)
                tl.store(DW_PART + (part + offs_d) * K + j, tl.sum(g * xj, axis=1), mask=mask_d)
            if HAS_BIAS:
                tl.store(DB_PART + part + offs_d, tl.sum(g, axis=1), mask=mask_d)
    m = mask_d[:, None] & (offs_l < L)[None, :]
    tl.store(DX + pid_b * sdb + offs_d[:, None] * sdd + offs_l[None, :] * sdl, dx.to(DX.dtype.element_ty), mask=m)


def _blocks(d: int, l: int) -> tuple[int, int]:
    block_l = min(256, max(16, triton.next_power_of_2(l)))
    block_d = min(max(16, 4096 // block_l), max(16, triton.next_power_of_2(d)))
    return block_d, block_l


def _strides3(t):
    return (t.stride(0), t.stride(1), t.stride(2)) if t is not None else (0, 0, 0)


class _CausalConv1dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, initial_states, silu):
        b, d, l = x.shape
        k = weight.shape[1]
        y = torch.empty((b, d, l), dtype=x.dtype, device=x.device)
        block_d, block_l = _blocks(d, l)
        grid = (triton.cdiv(l, block_l), triton.cdiv(d, block_d), b)
        with torch.cuda.device(x.device):
            _conv_fwd_kernel[grid](
                x, weight, bias if bias is not None else weight, initial_states if initial_states is not None else x,
                y, d, l, *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states),
                *_strides3(y), K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None, SILU=silu,
                BLOCK_D=block_d, BLOCK_L=block_l, num_warps=4,
            )
        ctx.save_for_backward(x, weight, bias, initial_states)
        ctx.silu = silu
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias, initial_states = ctx.saved_tensors
        b, d, l = x.shape
        k = weight.shape[1]
        block_d, block_l = _blocks(d, l)
        n_lblocks = triton.cdiv(l, block_l)
        dx = torch.empty((b, d, l), dtype=x.dtype, device=x.device)
        dw_part = torch.empty((b * n_lblocks, d, k), dtype=torch.float32, device=x.device)
        db_part = torch.empty((b * n_lblocks, d), dtype=torch.float32, device=x.device) if bias is not None else None
        grid = (n_lblocks, triton.cdiv(d, block_d), b)
        with torch.cuda.device(x.device):
            _conv_bwd_kernel[grid](
                x, weight, bias if bias is not None else weight, initial_states if initial_states is not None else x,
                dy, dx, dw_part, db_part if db_part is not None else dw_part, d, l, n_lblocks,
                *_strides3(x), weight.stride(0), weight.stride(1), *_strides3(initial_states), *_strides3(dy),
                *_strides3(dx), K=k, HAS_BIAS=bias is not None, HAS_INIT=initial_states is not None,
                SILU=ctx.silu, BLOCK_D=block_d, BLOCK_L=block_l, num_warps=8,  # 2k-1 live tiles: more threads
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
