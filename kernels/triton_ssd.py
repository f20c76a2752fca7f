"""Our Triton SSD scan (Mamba-2), forward and backward (imports triton: load only on first use).

Why our own: mamba-ssm's chunked scan is some fifteen kernels forward and backward that pass chunk states, C.B^T and
their gradients through memory in float32, and its backward recomputes the forward's states; at the 100M trial its
7 layers take 20.9 of an 81.2 ms step (H100, bench/RESULTS.md) for ~2 ms of FLOPs at the ceiling. Here one program
per (sequence, head) walks its chunks in order, holding the state (p x n, float32) in registers:

    forward, chunk by chunk (acs = cumsum(dt A) inside the chunk, S the state entering it):
        y   = ((C B^T) * exp(acs_l - acs_s) [s <= l] * dt_s) x  +  exp(acs) * (C S^T)  +  D x
        S  <- exp(acs_end) S + x^T (B * exp(acs_end - acs) * dt)
    backward: the same chunks in reverse, carrying the state's gradient, from the states a second forward walk
    stores (one that writes no y); a program per (sequence, head, block of state columns), so that the state and
    its gradient fit in registers together.

The kernels' chunk (Tiles) is their own: the chunked form is exact, so the layer's chunk_size does not change the
result beyond rounding. A bf16 layer's matmuls take bf16 operands into float32 accumulators. dB and dC are written
per head and summed over each group's heads by torch (and dx, ddt, dA over the column blocks), so the result does
not depend on the order programs finish in. y is written once, in the layer's dtype; the gate z and dt's bias,
softplus and limits stay in torch around the scan (kernels/ssd.py), as autograd differentiates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .triton_launch import launch_device


@dataclass(frozen=True)
class Tiles:
    """Rows of a chunk and warps, per walk, and the state columns a backward program holds: a chunk's (Q, Q) scores
    and (Q, n) tiles sit in registers beside the (p, n) state (and, backward, its gradient). The backward's state
    walk stores states at the backward's chunks."""
    q_forward: int
    warps_forward: int
    q_backward: int
    warps_backward: int
    n_backward: int = 64  # state columns a backward program holds (a program per block of them)


# Not yet timed on a GPU (bench_kernels.py --only ssd_ours times the candidates). Chosen by what ptxas reports for
# an H100 at the 100M trial's head (p 64, n 128, bf16), compiled on the CPU (2026-12-08): the forward keeps all in
# registers at 32 rows and 8 warps (246 registers; 64 rows spill ~500 bytes a thread). The backward holds the state
# and its gradient at once: with all 128 columns a program it spilled 1.3 KB a thread at 32 rows; split by columns,
# 64 a program, 0.5 KB at 32 rows and 0.2 KB at 16 (32 columns spill more: 1.2 KB).
TILES = Tiles(q_forward=32, warps_forward=8, q_backward=16, warps_backward=8, n_backward=64)
CANDIDATES = (TILES, Tiles(32, 8, 32, 8, 64), Tiles(32, 8, 32, 8, 128), Tiles(32, 8, 16, 8, 32),
              Tiles(64, 8, 32, 8, 64))


@triton.jit
def _load_chunk(x_ptr, dt_ptr, B_ptr, C_ptr, b, h, g, rows, offs_p, offs_n, L, P, N,
                sx_b, sx_l, sx_h, sx_p, sdt_b, sdt_l, sdt_h, sb_b, sb_l, sb_g, sb_n, sc_b, sc_l, sc_g, sc_n):
    """x (Q, p), B and C (Q, n) of one chunk in their own dtype (the matmuls' operands), dt (Q,) in float32; rows
    past the end read as zeros (dt = 0 there, so they neither decay nor feed the state)."""
    in_q = rows < L
    in_qp = in_q[:, None] & (offs_p[None, :] < P)
    in_qn = in_q[:, None] & (offs_n[None, :] < N)
    x = tl.load(x_ptr + b * sx_b + rows[:, None] * sx_l + h * sx_h + offs_p[None, :] * sx_p, mask=in_qp, other=0.0)
    dt = tl.load(dt_ptr + b * sdt_b + rows * sdt_l + h * sdt_h, mask=in_q, other=0.0)
    Bm = tl.load(B_ptr + b * sb_b + rows[:, None] * sb_l + g * sb_g + offs_n[None, :] * sb_n, mask=in_qn, other=0.0)
    Cm = tl.load(C_ptr + b * sc_b + rows[:, None] * sc_l + g * sc_g + offs_n[None, :] * sc_n, mask=in_qn, other=0.0)
    return x, dt.to(tl.float32), Bm, Cm


@triton.jit
def _load_D(D_ptr, h, offs_p, P, HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr, BLOCK_P: tl.constexpr):
    """D of head h across its p channels, float32 (zeros without D)."""
    if HAS_D:
        if D_PER_CHANNEL:
            D = tl.load(D_ptr + h * P + offs_p, mask=offs_p < P, other=0.0).to(tl.float32)
        else:
            D = tl.zeros((BLOCK_P,), dtype=tl.float32) + tl.load(D_ptr + h).to(tl.float32)
    else:
        D = tl.zeros((BLOCK_P,), dtype=tl.float32)
    return D


@triton.jit
def _ssd_fwd_kernel(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, init_ptr, y_ptr, states_ptr, final_ptr,
                    L, n_chunks, H, heads_per_group, P, N,
                    sx_b, sx_l, sx_h, sx_p, sdt_b, sdt_l, sdt_h, sb_b, sb_l, sb_g, sb_n, sc_b, sc_l, sc_g, sc_n,
                    HAS_INIT: tl.constexpr, HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr,
                    WRITE_Y: tl.constexpr, STORE_STATES: tl.constexpr,
                    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """y (b, l, h, p) contiguous, in its own dtype: the scan plus D x."""
    b = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    g = h // heads_per_group
    A = tl.load(A_ptr + h).to(tl.float32)
    offs_q = tl.arange(0, BLOCK_Q)
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    D = _load_D(D_ptr, h, offs_p, P, HAS_D, D_PER_CHANNEL, BLOCK_P)
    pn = offs_p[:, None] * N + offs_n[None, :]  # a state (p, n), contiguous
    in_pn = (offs_p[:, None] < P) & (offs_n[None, :] < N)
    head_state = (b * H + h) * P * N
    if HAS_INIT:
        S = tl.load(init_ptr + head_state + pn, mask=in_pn, other=0.0).to(tl.float32)
    else:
        S = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    causal = offs_q[:, None] >= offs_q[None, :]
    c = 0
    while c < n_chunks:  # a while, not a range: Triton 3.6's interpreter cannot range over a runtime bound
        rows = c * BLOCK_Q + offs_q.to(tl.int64)
        x, dt, Bm, Cm = _load_chunk(x_ptr, dt_ptr, B_ptr, C_ptr, b, h, g, rows, offs_p, offs_n, L, P, N,
                                    sx_b, sx_l, sx_h, sx_p, sdt_b, sdt_l, sdt_h, sb_b, sb_l, sb_g, sb_n,
                                    sc_b, sc_l, sc_g, sc_n)
        acs = tl.cumsum(dt * A, 0)
        acs_end = tl.sum(tl.where(offs_q == BLOCK_Q - 1, acs, 0.0), 0)
        if STORE_STATES:  # (b, chunk, h, p, n): the state entering each chunk, for the backward
            tl.store(states_ptr + ((b * n_chunks + c) * H + h) * P * N + pn, S.to(states_ptr.dtype.element_ty),
                     mask=in_pn)
        if WRITE_Y:
            decay = tl.exp(tl.where(causal, acs[:, None] - acs[None, :], float("-inf")))
            scores = tl.dot(Cm, tl.trans(Bm)) * decay * dt[None, :]
            y = (tl.dot(scores.to(x.dtype), x) + tl.exp(acs)[:, None] * tl.dot(Cm, tl.trans(S.to(Cm.dtype)))
                 + D[None, :] * x.to(tl.float32))
            in_qp = (rows[:, None] < L) & (offs_p[None, :] < P)
            tl.store(y_ptr + ((b * L + rows[:, None]) * H + h) * P + offs_p[None, :],
                     y.to(y_ptr.dtype.element_ty), mask=in_qp)
        w = tl.exp(acs_end - acs) * dt
        S = tl.exp(acs_end) * S + tl.dot(tl.trans(x), (Bm.to(tl.float32) * w[:, None]).to(x.dtype))
        c += 1
    tl.store(final_ptr + head_state + pn, S, mask=in_pn)


@triton.jit
def _ssd_bwd_kernel(x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, states_ptr, dy_ptr, dfinal_ptr,
                    dx_ptr, ddt_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dinit_ptr,
                    n_batch, L, n_chunks, H, heads_per_group, P, N,
                    sx_b, sx_l, sx_h, sx_p, sdt_b, sdt_l, sdt_h, sb_b, sb_l, sb_g, sb_n, sc_b, sc_l, sc_g, sc_n,
                    HAS_D: tl.constexpr, D_PER_CHANNEL: tl.constexpr, HAS_DFINAL: tl.constexpr,
                    BLOCK_Q: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    """A program per (sequence, head, block of BLOCK_N state columns): the state and its gradient split by columns,
    so that both fit in registers. dB and dC per head (b, l, h, n) and the initial state's gradient are whole per
    block; dx, ddt (b, l, h[, p]) and dA (b, h) are each block's part (a leading dimension of blocks, summed by the
    caller), dD per (b, h, p) from the first block. All float32 and contiguous; dy (b, l, h, p) and dfinal
    (b, h, p, n) contiguous."""
    b = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1).to(tl.int64)
    block = tl.program_id(2)
    first = block == 0  # the terms that do not go through the state: D's, once
    dx_ptr += block.to(tl.int64) * n_batch * L * H * P
    ddt_ptr += block.to(tl.int64) * n_batch * L * H
    dA_ptr += block.to(tl.int64) * n_batch * H
    g = h // heads_per_group
    A = tl.load(A_ptr + h).to(tl.float32)
    offs_q = tl.arange(0, BLOCK_Q)
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = block * BLOCK_N + tl.arange(0, BLOCK_N)
    D = _load_D(D_ptr, h, offs_p, P, HAS_D, D_PER_CHANNEL, BLOCK_P) * tl.where(first, 1.0, 0.0)
    dD = tl.zeros((BLOCK_P,), dtype=tl.float32)
    pn = offs_p[:, None] * N + offs_n[None, :]
    in_pn = (offs_p[:, None] < P) & (offs_n[None, :] < N)
    head_state = (b * H + h) * P * N
    if HAS_DFINAL:
        dS = tl.load(dfinal_ptr + head_state + pn, mask=in_pn, other=0.0)
    else:
        dS = tl.zeros((BLOCK_P, BLOCK_N), dtype=tl.float32)
    causal = offs_q[:, None] >= offs_q[None, :]
    last = offs_q == BLOCK_Q - 1
    dA = 0.0
    c = n_chunks - 1
    while c >= 0:
        rows = c * BLOCK_Q + offs_q.to(tl.int64)
        x, dt, Bm, Cm = _load_chunk(x_ptr, dt_ptr, B_ptr, C_ptr, b, h, g, rows, offs_p, offs_n, L, P, N,
                                    sx_b, sx_l, sx_h, sx_p, sdt_b, sdt_l, sdt_h, sb_b, sb_l, sb_g, sb_n,
                                    sc_b, sc_l, sc_g, sc_n)
        in_q = rows < L
        in_qp = in_q[:, None] & (offs_p[None, :] < P)
        in_qn = in_q[:, None] & (offs_n[None, :] < N)
        dy = tl.load(dy_ptr + ((b * L + rows[:, None]) * H + h) * P + offs_p[None, :], mask=in_qp, other=0.0)
        dy = dy.to(x.dtype)  # the matmuls' operand dtype (y is written in x's dtype, or float32 before a gate)
        dy32 = dy.to(tl.float32)
        S_in = tl.load(states_ptr + ((b * n_chunks + c) * H + h) * P * N + pn, mask=in_pn,
                       other=0.0).to(tl.float32)
        acs = tl.cumsum(dt * A, 0)
        acs_end = tl.sum(tl.where(last, acs, 0.0), 0)
        e = tl.exp(acs)
        E = tl.exp(acs_end)
        decay = tl.exp(tl.where(causal, acs[:, None] - acs[None, :], float("-inf")))
        CB = tl.dot(Cm, tl.trans(Bm))
        scores = CB * decay * dt[None, :]
        to_end = tl.exp(acs_end - acs)
        w = to_end * dt
        op = x.dtype  # the matmuls' operands: bf16 for a bf16 layer (float32 accumulators), float32 for float32
        S_op = S_in.to(op)
        dS_op = dS.to(op)
        # y = scores x + e (C S_in^T) + D x
        d_scores = tl.dot(dy, tl.trans(x))
        dx = tl.dot(tl.trans(scores.to(op)), dy) + D[None, :] * dy32
        dD += tl.sum(dy32 * x.to(tl.float32), 0)
        dye = (dy32 * e[:, None]).to(op)
        dC = tl.dot(dye, S_op)
        de = tl.sum(dy32 * tl.dot(Cm, tl.trans(S_op)), 1)
        # S_out = E S_in + x^T (B w)
        B32 = Bm.to(tl.float32)
        dx += tl.dot((B32 * w[:, None]).to(op), tl.trans(dS_op))
        dBw = tl.dot(x, dS_op)
        dB = dBw * w[:, None]
        dw = tl.sum(dBw * B32, 1)
        dE = tl.sum(tl.sum(dS * S_in, 1), 0)
        dS = E * dS + tl.dot(tl.trans(dye), Cm)  # the gradient of the state entering this chunk
        # scores = (C B^T) decay dt_s: through C B^T, through dt_s, through acs_l - acs_s
        d_cb = (d_scores * decay * dt[None, :]).to(op)
        dC += tl.dot(d_cb, Bm)
        dB += tl.dot(tl.trans(d_cb), Cm)
        through_dt = d_scores * CB * decay
        ddt = tl.sum(through_dt, 0) + dw * to_end
        d_log = through_dt * dt[None, :]
        dacs = tl.sum(d_log, 1) - tl.sum(d_log, 0) + de * e - dw * w
        dacs += tl.where(last, dE * E + tl.sum(dw * w, 0), 0.0)  # acs_end is acs's last element
        da = tl.sum(dacs, 0) - tl.cumsum(dacs, 0) + dacs  # acs = cumsum(a): each a_j feeds every acs_i, i >= j
        ddt += da * A
        dA += tl.sum(da * dt, 0)
        tl.store(dx_ptr + ((b * L + rows[:, None]) * H + h) * P + offs_p[None, :], dx, mask=in_qp)
        tl.store(ddt_ptr + (b * L + rows) * H + h, ddt, mask=in_q)
        per_head_qn = ((b * L + rows[:, None]) * H + h) * N + offs_n[None, :]
        tl.store(dB_ptr + per_head_qn, dB, mask=in_qn)
        tl.store(dC_ptr + per_head_qn, dC, mask=in_qn)
        c -= 1
    tl.store(dinit_ptr + head_state + pn, dS, mask=in_pn)
    tl.store(dA_ptr + b * H + h, dA)
    tl.store(dD_ptr + (b * H + h) * P + offs_p, dD, mask=(offs_p < P) & first)


def _blocks(p: int, n: int) -> tuple[int, int]:
    return max(16, triton.next_power_of_2(p)), max(16, triton.next_power_of_2(n))


def _strides(x, dt, B, C) -> tuple[int, ...]:
    return (*x.stride(), *dt.stride(), *B.stride(), *C.stride())


def _walk_forward(x, dt, A, B, C, D, initial_states, write_y: bool, store_states: bool, block_q: int, warps: int,
                  y_dtype: torch.dtype = torch.float32):
    """(y (b, l, h, p) in y_dtype or None, the states entering each chunk of block_q rows (b, chunks, h, p, n) in
    x's dtype or None, the final state in float32)."""
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    block_p, block_n = _blocks(p, n)
    chunks = triton.cdiv(l, block_q)
    f32 = dict(dtype=torch.float32, device=x.device)
    y = torch.empty((b, l, h, p), dtype=y_dtype, device=x.device) if write_y else None
    # in the layer's dtype, as the backward's matmuls take them (half the memory of float32 for a bf16 layer)
    states = torch.empty((b, chunks, h, p, n), dtype=x.dtype, device=x.device) if store_states else None
    final = torch.empty((b, h, p, n), **f32)
    init = initial_states.contiguous() if initial_states is not None else None
    with launch_device(x):
        _ssd_fwd_kernel[(b, h)](
            x, dt, A, B, C, D.contiguous() if D is not None else A, init if init is not None else final,
            y if y is not None else final, states if states is not None else final, final, l, chunks, h, h // g, p,
            n, *_strides(x, dt, B, C), HAS_INIT=init is not None, HAS_D=D is not None,
            D_PER_CHANNEL=D is not None and D.dim() == 2, WRITE_Y=write_y, STORE_STATES=store_states,
            BLOCK_Q=block_q, BLOCK_P=block_p, BLOCK_N=block_n, num_warps=warps)
    return y, states, final


def _walk_backward(dy, dfinal, x, dt, A, B, C, D, states, tiles: Tiles):
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    block_p, block_n = _blocks(p, n)
    block_n = min(block_n, tiles.n_backward)
    blocks = triton.cdiv(n, block_n)
    f32 = dict(dtype=torch.float32, device=x.device)
    dx, ddt = torch.empty((blocks, b, l, h, p), **f32), torch.empty((blocks, b, l, h), **f32)
    dB_heads, dC_heads = torch.empty((b, l, h, n), **f32), torch.empty((b, l, h, n), **f32)
    dA_parts, dD_parts = torch.empty((blocks, b, h), **f32), torch.empty((b, h, p), **f32)
    dinit = torch.empty((b, h, p, n), **f32)
    dy = dy.contiguous()
    dfinal = dfinal.float().contiguous() if dfinal is not None else None
    with launch_device(x):
        _ssd_bwd_kernel[(b, h, blocks)](
            x, dt, A, B, C, D.contiguous() if D is not None else A, states, dy,
            dfinal if dfinal is not None else dinit, dx, ddt, dB_heads, dC_heads, dA_parts, dD_parts, dinit, b, l,
            triton.cdiv(l, tiles.q_backward), h, h // g, p, n, *_strides(x, dt, B, C), HAS_D=D is not None,
            D_PER_CHANNEL=D is not None and D.dim() == 2, HAS_DFINAL=dfinal is not None, BLOCK_Q=tiles.q_backward,
            BLOCK_P=block_p, BLOCK_N=block_n, num_warps=tiles.warps_backward)
    dx, ddt, dA_parts = (t[0] if blocks == 1 else t.sum(0) for t in (dx, ddt, dA_parts))
    per_group = (b, l, g, h // g, n)
    dD = None
    if D is not None:
        dD = dD_parts.sum(0) if D.dim() == 2 else dD_parts.sum((0, 2))
    return (dx, ddt, dA_parts.sum(0), dB_heads.view(per_group).sum(3), dC_heads.view(per_group).sum(3), dD,
            dinit)


class _ScanFn(torch.autograd.Function):
    """y (b, l, h, p) in y_dtype, the scan plus D x, and the final state (b, h, p, n) float32, with dt as the scan
    uses it (float32, bias, softplus and limits applied); the gate stays outside."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, initial_states, y_dtype):
        y, _, final = _walk_forward(x, dt, A, B, C, D, initial_states, write_y=True, store_states=False,
                                    block_q=TILES.q_forward, warps=TILES.warps_forward, y_dtype=y_dtype)
        ctx.save_for_backward(x, dt, A, B, C, D, initial_states)
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        x, dt, A, B, C, D, initial_states = ctx.saved_tensors
        _, states, _ = _walk_forward(x, dt, A, B, C, D, initial_states, write_y=False, store_states=True,
                                     block_q=TILES.q_backward, warps=TILES.warps_backward)
        if dy is None:
            dy = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        dx, ddt, dA, dB, dC, dD, dinit = _walk_backward(dy, dfinal, x, dt, A, B, C, D, states, TILES)
        return (dx.to(x.dtype), ddt, dA.to(A.dtype), dB.to(B.dtype), dC.to(C.dtype),
                dD.to(D.dtype) if D is not None else None,
                dinit.to(initial_states.dtype) if initial_states is not None else None, None)


def scan(x, dt_eff, A, B, C, D=None, initial_states=None, y_dtype: torch.dtype | None = None):
    """(y, final state float32): the scan of dt_eff (float32, as the scan uses it) plus D x, without the gate; y in
    y_dtype (x's by default)."""
    return _ScanFn.apply(x, dt_eff.contiguous(), A, B, C, D, initial_states, y_dtype or x.dtype)
