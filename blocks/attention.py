"""Attention block: q/k/v/o projections, GQA, optional qk-norm (Qwen3), RoPE or none, window, logit soft-cap.

The attention itself goes through archsearch.kernels.attention (queries aligned to the end of the keys), which
picks the backend and records it.
"""

from __future__ import annotations

import torch
from torch import nn

from archsearch.kernels import CachePositions
from archsearch.kernels import attention as attention_op
from archsearch.spec import AttentionBlock

from .init import Initializer
from .norms import RMSNorm
from .rope import Rotary
from .state import KVCache


class Attention(nn.Module):
    def __init__(self, block: AttentionBlock, d_model: int, norm_eps: float, device=None, dtype=None):
        super().__init__()
        dims = block.dims(d_model)
        self.n_heads, self.n_kv_heads, self.head_dim = dims.n_heads, dims.n_kv_heads, dims.head_dim
        self.window = block.window
        self.softcap = block.logit_softcap
        self.scale = block.query_scale
        q_dim, kv_dim = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        kw = dict(device=device, dtype=dtype)
        self.q_proj = nn.Linear(d_model, q_dim, bias=block.qkv_bias, **kw)
        self.k_proj = nn.Linear(d_model, kv_dim, bias=block.qkv_bias, **kw)
        self.v_proj = nn.Linear(d_model, kv_dim, bias=block.qkv_bias, **kw)
        self.o_proj = nn.Linear(q_dim, d_model, bias=block.out_bias, **kw)
        self.q_norm = RMSNorm(self.head_dim, norm_eps, **kw) if block.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, norm_eps, **kw) if block.qk_norm else None
        self.rotary = (Rotary(self.head_dim, block.rope_theta, block.rope_scaling, device=device)
                       if block.rope_theta else None)

    def init_weights(self, init: Initializer) -> None:
        for linear in (self.q_proj, self.k_proj, self.v_proj):
            init.linear_(linear, init.std)
        init.linear_(self.o_proj, init.output_std)
        for norm in (self.q_norm, self.k_norm):
            if norm is not None:
                norm.reset_parameters()
        if self.rotary is not None:
            self.rotary.reset_parameters()

    @staticmethod
    def kernel_calls(block: AttentionBlock, d_model: int, max_context: int, device: str,
                     dtype: torch.dtype) -> list[tuple[str, dict]]:
        """(op, call info) of the attention call `forward` makes, at its largest (training over max_context),
        for the registry to check before any tensor exists."""
        a = block.dims(d_model)
        return [("attention", dict(device=device, dtype=dtype, head_dim=a.head_dim, t=max_context, s=max_context,
                                   causal=True, window=block.window, softcap=block.logit_softcap,
                                   requires_grad=True))]

    def allocate_cache(self, batch: int, max_len: int, device, dtype) -> KVCache:
        return KVCache.allocate(batch, self.n_kv_heads, self.head_dim, max_len, self.window, device, dtype)

    def forward(self, x_BTD: torch.Tensor, cache: KVCache | None = None, start: int = 0) -> torch.Tensor:
        """start: absolute position of the first token (only with a cache)."""
        b, t, _ = x_BTD.shape
        q_BTHD = self.q_proj(x_BTD).view(b, t, self.n_heads, self.head_dim)
        k_BTHD = self.k_proj(x_BTD).view(b, t, self.n_kv_heads, self.head_dim)
        v_BTHD = self.v_proj(x_BTD).view(b, t, self.n_kv_heads, self.head_dim)
        if self.q_norm is not None:
            q_BTHD, k_BTHD = self.q_norm(q_BTHD), self.k_norm(k_BTHD)
        q_BHTD, k_BHTD, v_BHTD = q_BTHD.transpose(1, 2), k_BTHD.transpose(1, 2), v_BTHD.transpose(1, 2)
        if self.rotary is not None:
            cos_TD, sin_TD = self.rotary.cos_sin(start, t, x_BTD.device)
            q_BHTD, k_BHTD = self.rotary(q_BHTD, cos_TD, sin_TD), self.rotary(k_BHTD, cos_TD, sin_TD)
        if cache is None:
            out_BHTD = self._attend(q_BHTD, k_BHTD, v_BHTD, self.window)
        else:
            out_BHTD = self._attend_cached(q_BHTD, k_BHTD, v_BHTD, cache, start)
        return self.o_proj(out_BHTD.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))

    def _attend(self, q, k, v, window, positions=None):
        return attention_op(q, k, v, causal=True, window=window, softcap=self.softcap, scale=self.scale,
                            positions=positions)

    def _attend_cached(self, q_BHTD, k_BHTD, v_BHTD, cache: KVCache, start: int) -> torch.Tensor:
        """Attend over the whole preallocated cache with the slots' absolute positions: shapes never depend on
        `start`, so a compiled attention kernel is built once per chunk length."""
        t = q_BHTD.shape[2]
        q_pos_T = torch.arange(start, start + t, device=q_BHTD.device)
        if not cache.ring:
            if start + t > cache.capacity:
                raise ValueError(f"KV cache holds {cache.capacity} positions; tokens {start}..{start + t - 1} do "
                                 "not fit (allocate_cache with a larger max_len)")
            cache.k_BHSD[:, :, start:start + t].copy_(k_BHTD)
            cache.v_BHSD[:, :, start:start + t].copy_(v_BHTD)
            positions = CachePositions(q_pos_T, cache.slot_positions(start + t), end_aligned=start + t)
            return self._attend(q_BHTD, cache.k_BHSD, cache.v_BHSD, self.window, positions)
        W = cache.capacity
        if t == 1:  # decode: write first; every filled slot is inside the window, and order does not matter
            cache.k_BHSD[:, :, start % W].copy_(k_BHTD[:, :, 0])
            cache.v_BHSD[:, :, start % W].copy_(v_BHTD[:, :, 0])
            positions = CachePositions(q_pos_T, cache.slot_positions(start + 1), end_aligned=min(start + 1, W))
            return self._attend(q_BHTD, cache.k_BHSD, cache.v_BHSD, self.window, positions)
        # several tokens: the ring as it is (in ring order, positions from its table), then the new keys
        keys = torch.cat([cache.k_BHSD, k_BHTD], dim=2)
        values = torch.cat([cache.v_BHSD, v_BHTD], dim=2)
        positions = CachePositions(q_pos_T, torch.cat([cache.slot_positions(start), q_pos_T]))
        out_BHTD = self._attend(q_BHTD, keys, values, W, positions)
        del keys, values
        n = min(t, W)
        slots = torch.arange(start + t - n, start + t, device=q_BHTD.device) % W
        cache.k_BHSD[:, :, slots] = k_BHTD[:, :, t - n:]
        cache.v_BHSD[:, :, slots] = v_BHTD[:, :, t - n:]
        return out_BHTD
