"""Attention over a preallocated cache, with visibility taken from absolute positions instead of end alignment.

A KV cache of fixed capacity S holds in slot j the key of absolute position k_pos_S[j] (-1: empty); a ring
buffer holds them out of order. Key j is visible to query i iff 0 <= k_pos[j] <= q_pos[i] and (with a window)
k_pos[j] > q_pos[i] - window. Attending over the whole capacity keeps every shape fixed (FlexAttention then
compiles once per chunk length, not once per prefix length), and the block mask is built at block granularity
from per-block position bounds: (t/128) x (S/128) small integers, never a (t, S) element mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

BLOCK = 128  # FlexAttention's default block size (queries and keys)


@dataclass(frozen=True)
class CachePositions:
    """q_pos_T (t,) and k_pos_S (s,) int64 absolute positions (k_pos -1: an empty slot).

    end_aligned: when not None, attending to the first `end_aligned` slots with the queries aligned to their
    end (causal, same window) is the same call: a global cache (slot j holds position j, the queries are the
    last filled positions, later slots are empty), or one decoded token over a ring whose filled slots are all
    inside its window. Backends that only know end-aligned attention slice the keys there."""

    q_pos_T: torch.Tensor
    k_pos_S: torch.Tensor
    end_aligned: int | None = None


def visible_from_positions(q_pos_T: torch.Tensor, k_pos_S: torch.Tensor, window: int | None) -> torch.Tensor:
    """(t, s) bool element mask: the reference the block mask and the backends are checked against."""
    q, k = q_pos_T[:, None], k_pos_S[None, :]
    visible = (k >= 0) & (k <= q)
    if window is not None:
        visible &= k > q - window
    return visible


def block_bounds(pos: torch.Tensor, n_blocks: int, empty_is_invalid: bool):
    """Per block of BLOCK entries: (min, max, any valid, all valid) over the valid entries (pos >= 0)."""
    pad = n_blocks * BLOCK - pos.shape[0]
    if empty_is_invalid:
        pos = F.pad(pos, (0, pad), value=-1)
    else:  # queries: pad by repeating the last one, which leaves the bounds unchanged
        pos = torch.cat([pos, pos[-1:].expand(pad)])
    pos_NB = pos.view(n_blocks, BLOCK)
    valid = pos_NB >= 0
    big = torch.iinfo(pos.dtype).max
    lo = torch.where(valid, pos_NB, big).amin(-1)
    hi = torch.where(valid, pos_NB, -1).amax(-1)
    return lo, hi, valid.any(-1), valid.all(-1)


def block_pairs(q_pos_T: torch.Tensor, k_pos_S: torch.Tensor, window: int | None):
    """(partial, full) bool (nq, nk): blocks with some possibly visible pair, and blocks whose every pair is
    visible. `full` is exact (FlexAttention skips the mask there); `partial` may include blocks with no visible
    pair (a ring's block spans the wrap), never miss one."""
    nq, nk = -(-q_pos_T.shape[0] // BLOCK), -(-k_pos_S.shape[0] // BLOCK)
    qlo, qhi, _, _ = block_bounds(q_pos_T, nq, empty_is_invalid=False)
    klo, khi, kany, kall = block_bounds(k_pos_S, nk, empty_is_invalid=True)
    qlo, qhi = qlo[:, None], qhi[:, None]
    some = kany[None, :] & (klo[None, :] <= qhi)
    full = kall[None, :] & (khi[None, :] <= qlo)
    if window is not None:
        some &= khi[None, :] > qlo - window
        full &= klo[None, :] > qhi - window
    return some & ~full, full


def _ordered(mask_QK: torch.Tensor):
    """FlexAttention's sparse form of a block mask: per query block, how many key blocks and which first."""
    num = mask_QK.sum(-1, dtype=torch.int32)
    idx = torch.argsort(mask_QK.to(torch.int8), dim=-1, descending=True, stable=True).to(torch.int32)
    return num[None, None], idx[None, None]


def position_block_mask(flex, q_pos_T: torch.Tensor, k_pos_S: torch.Tensor, window: int | None):
    """A FlexAttention BlockMask over (t, s) from positions; its mask_mod reads the two position tensors."""

    def mask_mod(b, h, q_idx, kv_idx):
        qp, kp = q_pos_T[q_idx], k_pos_S[kv_idx]
        visible = (kp >= 0) & (kp <= qp)
        if window is not None:
            visible = visible & (kp > qp - window)
        return visible

    partial, full = block_pairs(q_pos_T, k_pos_S, window)
    num, idx = _ordered(partial)
    full_num, full_idx = _ordered(full)
    return flex.BlockMask.from_kv_blocks(num, idx, full_num, full_idx, BLOCK_SIZE=BLOCK, mask_mod=mask_mod,
                                         seq_lengths=(q_pos_T.shape[0], k_pos_S.shape[0]))
