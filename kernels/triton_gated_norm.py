"""Our Triton gated RMSNorm, forward and backward (imports triton: load only on first use).

Why our own: mamba-ssm's backward gives each program one group and ~500 rows that it walks one row at a time, one
warp per row at Mamba-2's group sizes (192 channels at the 100M trial): 3.2 ms a step for ~1 ms of bytes (H100,
bench/RESULTS.md). Here a program holds a tile of BLOCK_M rows of one group: the forward normalises them at once,
and the backward walks several such tiles, keeping dweight's partial sum in registers, written once per program
and reduced by torch (deterministic, no atomics). rstd is kept from the forward (float32, one per row and group).
Measured in that trial's step (H100, first version): forward 0.79 ms against mamba-ssm's 1.13, backward 3.61 ms
against 3.23, but 3.61 against 5.07 inside the fused Mamba mixer, where dz goes into a strided slice. Both read z
(and there write dz) as slices of 5,144-wide rows, a stride Triton cannot prove 16-byte aligned, so those moved one
bf16 at a time; the kernels now state the alignment their strides share (triton_launch.py): in the fused mixer's
step the backward then took 1.49 ms, the whole norm 2.23 (H100, 2026-12-07).
Its backend is chosen before mamba-ssm's (which stays for groups too wide for a tile); the fused mixer runs
whichever the gated_rmsnorm op chooses.

Layout: rows (M, N) with any row stride (z and its gradient are slices of the input projection's rows), unit
column stride. Math in float32, as gated_norm.gated_rms_norm_reference.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import triton
import triton.language as tl

from .triton_launch import launch_device, promise_multiple, stride_alignment


@triton.jit
def _silu_parts(z):
    sig = tl.sigmoid(z)
    return z * sig, sig * (1.0 + z * (1.0 - sig))  # silu(z), silu'(z)


@triton.jit
def _tile(X, Z, rows, cols, mask, sx, sz, HAS_Z: tl.constexpr):
    x = tl.load(X + rows[:, None] * sx + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_Z:
        z = tl.load(Z + rows[:, None] * sz + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    else:
        z = x  # never used
    return x, z


@triton.jit
def _gated_rms_fwd_kernel(X, Z, W, Y, RSTD, M, G, sx, sz, sy, eps,
                          HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_G: tl.constexpr, ALIGN: tl.constexpr):
    """Grid (row tiles, groups). ALIGN divides every row stride (triton_launch.stride_alignment)."""
    sx, sz, sy = promise_multiple(sx, ALIGN), promise_multiple(sz, ALIGN), promise_multiple(sy, ALIGN)
    group = tl.program_id(1)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)  # 64-bit: rows x stride may pass 2^31
    offs = tl.arange(0, BLOCK_G)
    cols = group * G + offs
    mask = (rows < M)[:, None] & (offs < G)[None, :]
    x, z = _tile(X, Z, rows, cols, mask, sx, sz, HAS_Z)
    h = x
    if HAS_Z and not NORM_BEFORE_GATE:
        h = x * _silu_parts(z)[0]
    rstd = 1.0 / tl.sqrt(tl.sum(h * h, axis=1) / G + eps)
    w = tl.load(W + cols, mask=offs < G, other=0.0).to(tl.float32)
    y = h * rstd[:, None] * w[None, :]
    if HAS_Z and NORM_BEFORE_GATE:
        y = y * _silu_parts(z)[0]
    tl.store(Y + rows[:, None] * sy + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + group.to(tl.int64) * M + rows, rstd, mask=rows < M)


@triton.jit
def _gated_rms_bwd_kernel(X, Z, W, RSTD, DY, DX, DZ, DW_PART, M, G, N, sx, sz, sdy, sdx, sdz,
                          HAS_Z: tl.constexpr, NORM_BEFORE_GATE: tl.constexpr, TILES: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_G: tl.constexpr, ALIGN: tl.constexpr):
    """Grid (programs along the rows, groups): program p takes row tiles p, p + programs, ... (past M: masked).
    ALIGN divides every row stride (triton_launch.stride_alignment)."""
    sx, sz, sdy = promise_multiple(sx, ALIGN), promise_multiple(sz, ALIGN), promise_multiple(sdy, ALIGN)
    sdx, sdz = promise_multiple(sdx, ALIGN), promise_multiple(sdz, ALIGN)
    group = tl.program_id(1)
    offs = tl.arange(0, BLOCK_G)
    cols = group * G + offs
    mask_g = offs < G
    w = tl.load(W + cols, mask=mask_g, other=0.0).to(tl.float32)
    # dweight's partial sums stay per row of the tile (a sum over the rows, across warps, once at the end instead of
    # once a tile)
    dw = tl.zeros((BLOCK_M, BLOCK_G), dtype=tl.float32)
    for i in range(TILES):  # a constexpr count: Triton 3.6's interpreter cannot loop over a runtime one
        rows = (tl.program_id(0) + i * tl.num_programs(0)).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
        mask_m = rows < M
        mask = mask_m[:, None] & mask_g[None, :]
        x, z = _tile(X, Z, rows, cols, mask, sx, sz, HAS_Z)
        dy = tl.load(DY + rows[:, None] * sdy + cols[None, :], mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + group.to(tl.int64) * M + rows, mask=mask_m, other=0.0)
        if HAS_Z:
            silu_z, dsilu_z = _silu_parts(z)
        if HAS_Z and not NORM_BEFORE_GATE:
            h = x * silu_z
        else:
            h = x
        xhat = h * rstd[:, None]
        if HAS_Z and NORM_BEFORE_GATE:
            dnormed = dy * silu_z  # the gradient reaching rmsnorm(x) * w
            dz = dy * xhat * w[None, :] * dsilu_z
        else:
            dnormed = dy
        dw += dnormed * xhat
        dxhat = dnormed * w[None, :]
        dh = (dxhat - xhat * (tl.sum(dxhat * xhat, axis=1) / G)[:, None]) * rstd[:, None]
        if HAS_Z and not NORM_BEFORE_GATE:
            dx = dh * silu_z
            dz = dh * x * dsilu_z
        else:
            dx = dh
        tl.store(DX + rows[:, None] * sdx + cols[None, :], dx.to(DX.dtype.element_ty), mask=mask)
        if HAS_Z:
            tl.store(DZ + rows[:, None] * sdz + cols[None, :], dz.to(DZ.dtype.element_ty), mask=mask)
    tl.store(DW_PART + tl.program_id(0) * N + cols, tl.sum(dw, axis=0), mask=mask_g)


def _block(group_size: int) -> tuple[int, int, int]:
    """(BLOCK_M rows, BLOCK_G columns, warps): a tile of ~4096 elements, 16 a thread at 8 warps."""
    block_g = triton.next_power_of_2(group_size)
    block_m = max(1, min(64, 4096 // block_g))
    return block_m, block_g, 8 if block_m * block_g >= 4096 else 4


@lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _programs_along_rows(x: torch.Tensor, n_tiles: int, n_groups: int) -> int:
    """Enough programs to fill the GPU about 4 deep, so each walks several tiles and writes dweight's part once."""
    sms = _sm_count(x.device.index if x.device.index is not None else torch.cuda.current_device()) if x.is_cuda else 4
    return max(1, min(n_tiles, -(-4 * sms // n_groups)))


def _tiles_per_program(n_tiles: int, programs: int) -> int:
    """A power of two (tiles past the rows are masked), so that few lengths share one compiled backward."""
    return triton.next_power_of_2(triton.cdiv(n_tiles, programs))


def _row_alignment(*rows: torch.Tensor | None) -> int:
    return stride_alignment(*(t.stride(0) for t in rows if t is not None))


def _unit_column_stride(**rows: torch.Tensor | None) -> None:
    for name, t in rows.items():
        if t is not None and t.stride(-1) != 1:
            raise ValueError(f"triton gated norm: {name} needs unit column stride, got strides {t.stride()}")


def norm_forward(x, weight, z, eps, group_size, norm_before_gate, out=None):
    """x, z: rows (M, N), unit column stride. (y (M, N) in x's dtype, or written into `out`; rstd (groups * M,)
    float32, group-major)."""
    _unit_column_stride(x=x, z=z, out=out)
    M, N = x.shape
    n_groups = N // group_size
    y = torch.empty_like(x, memory_format=torch.contiguous_format) if out is None else out
    rstd = torch.empty((n_groups * M,), dtype=torch.float32, device=x.device)
    block_m, block_g, warps = _block(group_size)
    with launch_device(x):
        _gated_rms_fwd_kernel[(triton.cdiv(M, block_m), n_groups)](
            x, z if z is not None else x, weight, y, rstd, M, group_size, x.stride(0),
            z.stride(0) if z is not None else 0, y.stride(0), eps, HAS_Z=z is not None,
            NORM_BEFORE_GATE=norm_before_gate, BLOCK_M=block_m, BLOCK_G=block_g,
            ALIGN=_row_alignment(x, z, y), num_warps=warps)
    return y, rstd


def norm_backward(dy, x, weight, z, rstd, group_size, norm_before_gate, dz=None):
    """(dx (M, N) in x's dtype, dweight in weight's dtype, dz or None); dz, when given, is written in place."""
    _unit_column_stride(dy=dy, x=x, z=z, dz=dz)
    M, N = x.shape
    n_groups = N // group_size
    block_m, block_g, warps = _block(group_size)
    n_tiles = triton.cdiv(M, block_m)
    programs = _programs_along_rows(x, n_tiles, n_groups)
    dx = torch.empty_like(x, memory_format=torch.contiguous_format)
    if z is not None and dz is None:
        dz = torch.empty_like(z, memory_format=torch.contiguous_format)
    dw_part = torch.empty((programs, N), dtype=torch.float32, device=x.device)
    with launch_device(x):
        _gated_rms_bwd_kernel[(programs, n_groups)](
            x, z if z is not None else x, weight, rstd, dy, dx, dz if dz is not None else dx, dw_part, M, group_size,
            N, x.stride(0), z.stride(0) if z is not None else 0, dy.stride(0), dx.stride(0),
            dz.stride(0) if dz is not None else 0, HAS_Z=z is not None, NORM_BEFORE_GATE=norm_before_gate,
            TILES=_tiles_per_program(n_tiles, programs), BLOCK_M=block_m, BLOCK_G=block_g,
            ALIGN=_row_alignment(x, z, dy, dx, dz), num_warps=warps)
    return dx, dw_part.sum(0).to(weight.dtype), dz


class _GatedRMSNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, z, eps, group_size, norm_before_gate):
        shape = x.shape
        x2, z2 = _rows(x), None if z is None else _rows(z)
        y, rstd = norm_forward(x2, weight, z2, eps, group_size, norm_before_gate)
        ctx.save_for_backward(x2, weight, z2, rstd)
        ctx.group_size, ctx.norm_before_gate, ctx.shape = group_size, norm_before_gate, shape
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy):
        x2, weight, z2, rstd = ctx.saved_tensors
        dx, dweight, dz = norm_backward(_rows(dy), x2, weight, z2, rstd, ctx.group_size, ctx.norm_before_gate)
        return dx.view(ctx.shape), dweight, None if dz is None else dz.view(ctx.shape), None, None, None


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(..., N) as rows (M, N) with unit column stride: a view where the strides allow it."""
    t = t if t.stride(-1) == 1 else t.contiguous()
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:  # rows that cannot be one stride apart
        return t.reshape(-1, t.shape[-1])


def gated_rms_norm_fn(x, weight, z=None, eps=1e-6, group_size=None, norm_before_gate=False):
    """(..., N) in x's dtype; the norm per group of group_size channels (None: all N)."""
    return _GatedRMSNormFn.apply(x, weight, z, eps, group_size or x.shape[-1], norm_before_gate)
