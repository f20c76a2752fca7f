"""Rotary position embedding in the rotate-half layout (Llama, Qwen3, Gemma 2 in Hugging Face transformers)."""

from __future__ import annotations

import torch
from torch import nn


class Rotary(nn.Module):
    """Applies RoPE to (b, h, t, d) tensors at absolute positions start .. start+t-1. No parameters."""

    def __init__(self, head_dim: int, theta: float, device=None):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        exponent = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
        self.register_buffer("inv_freq", 1.0 / (theta**exponent), persistent=False)

    def reset_parameters(self) -> None:
        """Recompute the frequencies (a model built on the meta device and moved by to_empty() needs this)."""
        exponent = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=self.inv_freq.device).float()
        self.inv_freq.copy_(1.0 / (self.theta ** (exponent / self.head_dim)))

    def cos_sin(self, start: int, length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        pos_T = torch.arange(start, start + length, device=device, dtype=torch.float32)
        freqs_TH = pos_T[:, None] * self.inv_freq.float()[None, :]
        emb_TD = torch.cat([freqs_TH, freqs_TH], dim=-1)
        return emb_TD.cos(), emb_TD.sin()

    def forward(self, x_BHTD: torch.Tensor, cos_TD: torch.Tensor, sin_TD: torch.Tensor) -> torch.Tensor:
        half = x_BHTD.shape[-1] // 2
        rotated_BHTD = torch.cat([-x_BHTD[..., half:], x_BHTD[..., :half]], dim=-1)
        return x_BHTD * cos_TD.to(x_BHTD.dtype) + rotated_BHTD * sin_TD.to(x_BHTD.dtype)
