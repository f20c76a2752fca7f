"""RMSNorm in float32 math, cast back to the input dtype (as NemotronH, Qwen3 and Gemma compute it)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """y = x / rms(x) * scale, with scale = weight, or (1 + weight) when unit_offset (Gemma: weight starts at 0)."""

    def __init__(self, dim: int, eps: float = 1e-5, unit_offset: bool = False, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.unit_offset = unit_offset
        self.weight = nn.Parameter(torch.empty(dim, device=device, dtype=dtype))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            (self.weight.zero_() if self.unit_offset else self.weight.fill_(1.0))

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        h_ND = x_ND.float()
        h_ND = h_ND * torch.rsqrt(h_ND.square().mean(-1, keepdim=True) + self.eps)
        scale_D = self.weight.float() + 1.0 if self.unit_offset else self.weight.float()
        return (h_ND * scale_D).to(x_ND.dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}, unit_offset={self.unit_offset}"
