"""The feed-forward kind: its definition and what the spec alone says about it.

The built module is archsearch.blocks.Mlp; the Hugging Face families map its fields themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import SpecIssue
from ..fields import bounded_int, raise_issues
from .base import BlockKind, LayerWorkspace

ACTIVATIONS = ("relu2", "gelu_tanh", "gelu", "silu", "relu")


@dataclass(frozen=True)
class MlpDims:
    ffn_dim: int


class MlpBlock(BlockKind):
    """Feed-forward block; give exactly one of `ffn_dim` or `ffn_ratio` (ffn_dim = ratio * d_model)."""

    kind: Literal["mlp"] = Field("mlp", description="mlp: a feed-forward block")
    label: ClassVar[str] = "MLP"
    relative_fields: ClassVar[tuple[str, ...]] = ("ffn_ratio", "multiple_of")
    ffn_dim: bounded_int(1, 1 << 20) | None = Field(None, description="hidden width; give this or ffn_ratio")
    ffn_ratio: Annotated[float, Field(gt=0, le=64)] | None = Field(None, description="hidden width = ffn_ratio x "
                                                                   "d_model, rounded up to multiple_of; give this "
                                                                   "or ffn_dim")
    multiple_of: bounded_int(1, 4096) = Field(1, description="ffn_ratio results are rounded up to this")
    activation: Literal["relu2", "gelu_tanh", "gelu", "silu", "relu"] = Field("relu2", description="activation "
                                                                              "function")
    gated: bool = Field(False, description="GLU form: down(act(gate(x)) * up(x))")
    bias: bool = Field(False, description="biases on the projections")

    @model_validator(mode="after")
    def _check(self) -> "MlpBlock":
        if (self.ffn_dim is None) == (self.ffn_ratio is None):
            raise_issues([SpecIssue(("ffn_dim",), "give exactly one of ffn_dim or ffn_ratio",
                                    (self.ffn_dim, self.ffn_ratio), "ffn_dim: int, or ffn_ratio: float")])
        return self

    def dims(self, d_model: int) -> MlpDims:
        if self.ffn_dim is not None:
            return MlpDims(self.ffn_dim)
        raw = math.ceil(self.ffn_ratio * d_model - 1e-9)
        return MlpDims(-(-raw // self.multiple_of) * self.multiple_of)

    # ------------------------------------------------------------------------------------------ accounting
    def parameters(self, d_model: int) -> int:
        d, f = d_model, self.dims(d_model).ffn_dim
        n_in = 2 if self.gated else 1
        return n_in * d * f + f * d + ((n_in * f + d) if self.bias else 0)

    def forward_flops(self, d_model: int, seq_len: int, decode: bool) -> float:
        """The weights alone (2 per parameter); the activation is element-wise."""
        return 2 * self.parameters(d_model)

    def linears(self, d_model: int) -> list[tuple[str, int, int]]:
        f = self.dims(d_model).ffn_dim
        ins = ["gate_proj", "up_proj"] if self.gated else ["up_proj"]
        return [(name, d_model, f) for name in ins] + [("down_proj", f, d_model)]

    def workspace(self, d_model: int, act_bytes: int, kernels: str, materialize_scores: bool) -> LayerWorkspace:
        """Per token: up, the activation's temporary and its result (3 F a; relu2 = relu then square; the gated
        form holds up, gate and act(gate)); a one-step activation holds 2 F a."""
        f = self.dims(d_model).ffn_dim
        live = 3 if (self.gated or self.activation == "relu2") else 2
        return LayerWorkspace(live * f * act_bytes, 0.0)
