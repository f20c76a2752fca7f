"""Deterministic initialisation: every draw comes from one CPU generator in a fixed order, then is copied into
the parameter, so the same seed gives the same weights on any device and in any dtype."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Initializer:
    generator: torch.Generator
    std: float  # hidden projections
    output_std: float  # projections that write into the residual stream
    embedding_std: float

    @classmethod
    def from_seed(cls, seed: int, std: float, output_std: float, embedding_std: float) -> "Initializer":
        return cls(torch.Generator(device="cpu").manual_seed(seed), std, output_std, embedding_std)

    def normal_(self, param: torch.Tensor, std: float) -> None:
        draw = torch.empty(param.shape, dtype=torch.float32).normal_(0.0, std, generator=self.generator)
        self._copy(param, draw)

    def uniform_(self, param: torch.Tensor, low: float, high: float) -> None:
        draw = torch.empty(param.shape, dtype=torch.float32).uniform_(low, high, generator=self.generator)
        self._copy(param, draw)

    def log_uniform_(self, param: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """Values exp(u) with u uniform in [log low, log high], returned (float32, CPU) without copying."""
        u = torch.rand(param.shape, dtype=torch.float32, generator=self.generator)
        return torch.exp(u * (math.log(high) - math.log(low)) + math.log(low))

    @staticmethod
    def _copy(param: torch.Tensor, value: torch.Tensor) -> None:
        with torch.no_grad():
            param.copy_(value.to(device=param.device, dtype=param.dtype))

    def linear_(self, linear: torch.nn.Linear, std: float) -> None:
        self.normal_(linear.weight, std)
        if linear.bias is not None:
            with torch.no_grad():
                linear.bias.zero_()
