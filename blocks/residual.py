"""One layer of the stack: x + post_norm?(mixer(pre_norm(x)))."""

from __future__ import annotations

import torch
from torch import nn

from .norms import RMSNorm


class ResidualLayer(nn.Module):
    def __init__(self, mixer: nn.Module, d_model: int, eps: float, unit_offset: bool, post_norm: bool,
                 device=None, dtype=None):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.norm = RMSNorm(d_model, eps, unit_offset, **kw)
        self.mixer = mixer
        self.post_norm = RMSNorm(d_model, eps, unit_offset, **kw) if post_norm else None

    def forward(self, x_BTD: torch.Tensor, cache=None, start: int = 0) -> torch.Tensor:
        # only stateful mixers (attention, Mamba-2) ever get a cache; `start` matters only with one
        h_BTD = self.mixer(self.norm(x_BTD)) if cache is None else self.mixer(self.norm(x_BTD), cache, start)
        if self.post_norm is not None:
            h_BTD = self.post_norm(h_BTD)
        return x_BTD + h_BTD
