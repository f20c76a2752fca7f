"""Feed-forward block: down(act(up(x))), or the gated form down(act(gate(x)) * up(x))."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.spec import MlpBlock

from .init import Initializer


def _relu2(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x).square()


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu2": _relu2,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "silu": F.silu,
    "relu": F.relu,
}


class Mlp(nn.Module):
    def __init__(self, block: MlpBlock, d_model: int, norm_eps: float | None = None, device=None, dtype=None):
        """norm_eps: unused (an MLP has no norm of its own); every mixer takes the same arguments."""
        super().__init__()
        ffn = block.dims(d_model).ffn_dim
        self.activation = block.activation
        self.act = ACTIVATIONS[block.activation]
        kw = dict(bias=block.bias, device=device, dtype=dtype)
        self.gate_proj = nn.Linear(d_model, ffn, **kw) if block.gated else None
        self.up_proj = nn.Linear(d_model, ffn, **kw)
        self.down_proj = nn.Linear(ffn, d_model, **kw)

    def init_weights(self, init: Initializer) -> None:
        for linear in (self.gate_proj, self.up_proj):
            if linear is not None:
                init.linear_(linear, init.std)
        init.linear_(self.down_proj, init.output_std)

    @staticmethod
    def kernel_calls(block: MlpBlock, d_model: int, max_context: int, device: str,
                     dtype: torch.dtype) -> list[tuple[str, dict]]:
        """Plain matmuls and activations: no call goes through archsearch.kernels."""
        return []

    def allocate_cache(self, batch: int, max_len: int, device, dtype) -> None:
        """An MLP keeps no state between tokens."""
        return None

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        h_BTF = self.up_proj(x_BTD)
        if self.gate_proj is not None:
            h_BTF = self.act(self.gate_proj(x_BTD)) * h_BTF
        else:
            h_BTF = self.act(h_BTF)
        return self.down_proj(h_BTF)
