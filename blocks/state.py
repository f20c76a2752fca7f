"""Per-layer inference state, preallocated once (static shapes, so decoding can later be captured in a graph).

Positions are absolute token indices; the model passes the index of the first token of each call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Keys/values after RoPE, (b, hkv, capacity, d). A windowed layer keeps a ring of its last `capacity`
    positions (position j lives in slot j % capacity); a global layer keeps position j in slot j."""

    k_BHSD: torch.Tensor
    v_BHSD: torch.Tensor
    ring: bool

    @property
    def capacity(self) -> int:
        return self.k_BHSD.shape[2]

    @classmethod
    def allocate(cls, batch: int, n_kv_heads: int, head_dim: int, max_len: int, window: int | None, device,
                 dtype) -> "KVCache":
        ring = window is not None and window < max_len
        capacity = window if ring else max_len
        shape = (batch, n_kv_heads, capacity, head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype),
                   ring)

    def nbytes(self) -> int:
        return 2 * self.k_BHSD.numel() * self.k_BHSD.element_size()

    def reset(self) -> None:
        """A new sequence: nothing to clear, since slots past the new position are never read (positions)."""

    def slot_positions(self, written: int) -> torch.Tensor:
        """(capacity,) int64: the absolute position each slot holds once positions 0..written-1 were written
        (-1: empty). The cache's position table, derived from the write rule (slot = position for a global
        cache, position % capacity for a ring) instead of stored, so it costs no state."""
        slots = torch.arange(self.capacity, device=self.k_BHSD.device)
        if not self.ring:
            return torch.where(slots < written, slots, -1)
        held = written - 1 - torch.remainder(written - 1 - slots, self.capacity)
        return torch.where(held >= 0, held, -1)


@dataclass
class MambaState:
    """ssm (b, h, p, n) float32 and conv (b, conv_dim, k-1): the last k-1 inputs of the depthwise conv."""

    ssm_BHPN: torch.Tensor
    conv_BDK: torch.Tensor

    @classmethod
    def allocate(cls, batch: int, n_heads: int, head_dim: int, d_state: int, conv_dim: int, conv_kernel: int,
                 device, dtype) -> "MambaState":
        return cls(torch.zeros(batch, n_heads, head_dim, d_state, device=device, dtype=torch.float32),
                   torch.zeros(batch, conv_dim, conv_kernel - 1, device=device, dtype=dtype))

    def nbytes(self) -> int:
        return self.ssm_BHPN.numel() * 4 + self.conv_BDK.numel() * self.conv_BDK.element_size()

    def reset(self) -> None:
        """A new sequence starts from zero states (the recurrence reads them whatever the position)."""
        self.ssm_BHPN.zero_()
        self.conv_BDK.zero_()
