"""Token embedding (with its multiplier) and the LM head (tied to the embedding or not, optional soft-cap)."""

from __future__ import annotations

import torch
from torch import nn


class Embedding(nn.Module):
    def __init__(self, vocab_size: int, d_model: int, multiplier: float, device=None, dtype=None):
        super().__init__()
        self.multiplier = multiplier
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model, device=device, dtype=dtype))

    def forward(self, ids_BT: torch.Tensor) -> torch.Tensor:
        x_BTD = nn.functional.embedding(ids_BT, self.weight)
        if self.multiplier != 1.0:
            # rounded to the activation dtype first, as Gemma's normalizer is
            x_BTD = x_BTD * torch.tensor(self.multiplier, dtype=x_BTD.dtype)
        return x_BTD


class LMHead(nn.Module):
    """logits = x W^T, W its own (vocab, d) weight or the embedding's; then c * tanh(logits / c) if soft-capped."""

    def __init__(self, vocab_size: int, d_model: int, tied_to: Embedding | None, softcap: float | None,
                 device=None, dtype=None):
        super().__init__()
        self.softcap = softcap
        self._tied = [tied_to] if tied_to is not None else None  # a list: not registered as a submodule
        self.weight = (nn.Parameter(torch.empty(vocab_size, d_model, device=device, dtype=dtype))
                       if tied_to is None else None)

    @property
    def tied(self) -> bool:
        return self._tied is not None

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        weight_VD = self._tied[0].weight if self._tied is not None else self.weight
        logits_BTV = nn.functional.linear(x_BTD, weight_VD)
        if self.softcap is not None:
            logits_BTV = self.softcap * torch.tanh(logits_BTV / self.softcap)
        return logits_BTV
