"""Run an op over sub-batches when one call would be too large for a fused kernel, and record that it did.

Fused kernels index with 32-bit offsets (mamba-ssm's Triton scan hit an illegal memory access at batch 194 x
8192 tokens, H100 2026-11-24) or fail at sizes they were never tested at (cuDNN SDPA at batch 194 x 16 heads x
2048 queries, same run). Splitting the batch is exact (sequences are independent). Without autograd the
pieces are copied into one preallocated output as they come, so the peak is the output plus one piece.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from . import registry

INT32_ELEMENTS = 2**31 - 1  # a tensor of more elements needs 64-bit offsets


def sub_batch(batch: int, per_sequence: int, limit: int, *views: torch.Tensor | None) -> int:
    """Sequences per call so that per_sequence * sequences stays within limit (at least 1).

    A kernel offsets sequence i by i * stride(0), so a view into a wider tensor (z, x, B, C and dt are column
    slices of the in_proj output) spans stride(0) elements per sequence, however few it holds: `views` count
    with that span (batch 194 x 2048 tokens faulted in mamba-ssm's norm and scan on the H100 that way)."""
    span = per_sequence
    for v in views:  # a plain loop: this runs on every fused call (stride()[0] is cheaper than stride(0))
        if isinstance(v, torch.Tensor) and v.dim() > 1:
            stride = v.stride()[0]
            if stride > span:
                span = stride
    return max(1, min(batch, limit // max(1, span)))


def _slice(value: Any, start: int, stop: int) -> Any:
    return value[start:stop] if isinstance(value, torch.Tensor) else value


def run_in_sub_batches(op: str, fn: Callable[..., Any], step: int, batched: dict[str, Any],
                       fixed: dict[str, Any], why: str) -> Any:
    """fn(**batched sliced along dim 0, **fixed) over sub-batches of `step`; outputs (a tensor or a tuple of
    tensors, each batch-first) are joined in order. `why` is recorded with registry.note()."""
    batch = next(v.shape[0] for v in batched.values() if isinstance(v, torch.Tensor))
    if step >= batch:  # callers on a hot path test this themselves and skip building the dicts
        return fn(**batched, **fixed)
    registry.note(op, f"batch {batch} run in sub-batches of {step}: {why}")
    pieces, out = [], None
    for start in range(0, batch, step):
        piece = fn(**{k: _slice(v, start, start + step) for k, v in batched.items()}, **fixed)
        parts = piece if isinstance(piece, tuple) else (piece,)
        if torch.is_grad_enabled() and any(p.requires_grad for p in parts):
            pieces.append(parts)
            continue
        if out is None:
            out = tuple(p.new_empty((batch, *p.shape[1:])) for p in parts)
        for o, p in zip(out, parts):
            o[start:start + p.shape[0]].copy_(p)
        del piece, parts
    if out is None:
        out = tuple(torch.cat(column) for column in zip(*pieces))
    return out if len(out) > 1 else out[0]
