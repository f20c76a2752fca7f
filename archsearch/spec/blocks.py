"""Block definitions: the three kinds a pattern symbol can stand for (a discriminated union on `kind`).

Each block may give sizes relative to d_model (`expand`, `ffn_ratio`, default `head_dim`) so that a search over
d_model keeps specs valid; `dims(d_model)` resolves them to the plain integers every consumer uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .errors import SpecIssue, _IssueGroup

# Bounds that reject absurd sizes with a clear message instead of an overflow or an hours-long allocation.
MAX_DIM = 1 << 16
MAX_HEADS = 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)


MAX_WINDOW = 1 << 24  # as max_context's bound


def _no_bool(low: int, high: int):
    """YAML reads `true` as a bool, which pydantic would take as 1; an integer field refuses it by name."""
    def check(value):
        if isinstance(value, bool):
            raise _IssueGroup([SpecIssue((), "must be an integer, not a boolean", value, f"an integer {low} .. {high}")])
        return value
    return BeforeValidator(check)


def bounded_int(low: int, high: int):
    """An integer field in [low, high] that refuses booleans (every integer field of a spec uses this)."""
    return Annotated[int, _no_bool(low, high), Field(ge=low, le=high)]


PositiveDim = bounded_int(1, MAX_DIM)
HeadCount = bounded_int(1, MAX_HEADS)


def _raise(issues: list[SpecIssue]) -> None:
    if issues:
        raise _IssueGroup(issues)


@dataclass(frozen=True)
class Mamba2Dims:
    n_heads: int
    head_dim: int
    d_inner: int  # n_heads * head_dim
    d_state: int
    n_groups: int
    conv_kernel: int

    @property
    def conv_dim(self) -> int:
        """Channels through the depthwise conv: x, B and C."""
        return self.d_inner + 2 * self.n_groups * self.d_state

    @property
    def in_proj_dim(self) -> int:
        """Outputs of the input projection: z, x, B, C and one dt per head."""
        return 2 * self.d_inner + 2 * self.n_groups * self.d_state + self.n_heads


class Mamba2Block(_Frozen):
    """Mamba-2 mixer (SSD). Give exactly one of `n_heads` or `expand` (d_inner = expand * d_model)."""

    kind: Literal["mamba2"] = "mamba2"
    n_heads: HeadCount | None = None
    expand: Annotated[float, Field(gt=0, le=64)] | None = None
    head_dim: PositiveDim = 64
    d_state: bounded_int(1, 1024) = 128
    n_groups: HeadCount = 1
    conv_kernel: bounded_int(2, 16) = 4
    chunk_size: bounded_int(1, 4096) = 256
    dt_min: Annotated[float, Field(gt=0)] = 0.001
    dt_max: Annotated[float, Field(gt=0)] = 0.1
    dt_init_floor: Annotated[float, Field(gt=0)] = 1e-4
    dt_limit: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(gt=0)]] | None = None
    A_init_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = (1.0, 16.0)
    gated_norm: bool = True  # RMSNorm(y * silu(z)) per group before out_proj, as Mamba-2 and NemotronH do
    conv_bias: bool = True
    bias: bool = False  # in_proj / out_proj bias

    @model_validator(mode="after")
    def _check(self) -> "Mamba2Block":
        issues = []
        if (self.n_heads is None) == (self.expand is None):
            issues.append(SpecIssue(("n_heads",), "give exactly one of n_heads or expand",
                                    (self.n_heads, self.expand), "n_heads: int, or expand: float"))
        if self.n_heads is not None and self.n_heads % self.n_groups:
            issues.append(SpecIssue(("n_groups",), f"n_groups must divide n_heads ({self.n_heads})", self.n_groups,
                                    f"divisors of {self.n_heads}: {_divisors(self.n_heads)}"))
        if self.dt_min >= self.dt_max:
            issues.append(SpecIssue(("dt_min",), f"dt_min must be below dt_max ({self.dt_max})", self.dt_min))
        low, high = self.A_init_range
        if low > high:
            issues.append(SpecIssue(("A_init_range",), "must be (low, high) with low <= high", self.A_init_range))
        if self.dt_limit is not None and self.dt_limit[0] >= self.dt_limit[1]:
            issues.append(SpecIssue(("dt_limit",), "must be (low, high) with low < high", self.dt_limit))
        _raise(issues)
        return self

    def dims(self, d_model: int) -> Mamba2Dims:
        if self.n_heads is not None:
            n_heads = self.n_heads
        else:
            n_heads = round(self.expand * d_model / self.head_dim)
        return Mamba2Dims(n_heads, self.head_dim, n_heads * self.head_dim, self.d_state, self.n_groups,
                          self.conv_kernel)

    def check_against(self, d_model: int) -> list[SpecIssue]:
        """Problems that only show once d_model is known (paths relative to this block)."""
        if self.expand is None:
            return []
        d_inner = self.expand * d_model
        if not math.isclose(d_inner, round(d_inner)) or round(d_inner) % self.head_dim:
            return [SpecIssue(("expand",), f"expand * d_model ({d_inner:g}) must be a multiple of head_dim "
                              f"({self.head_dim})", self.expand)]
        n_heads = round(d_inner) // self.head_dim
        if n_heads % self.n_groups:
            return [SpecIssue(("n_groups",), f"n_groups must divide the number of heads ({n_heads} = expand * "
                              f"d_model / head_dim)", self.n_groups, f"divisors of {n_heads}: {_divisors(n_heads)}")]
        if n_heads > MAX_HEADS:
            return [SpecIssue(("expand",), f"gives {n_heads} heads, more than {MAX_HEADS}", self.expand)]
        return []


@dataclass(frozen=True)
class AttentionDims:
    n_heads: int
    n_kv_heads: int
    head_dim: int


class AttentionBlock(_Frozen):
    """Multi-head attention with GQA/MQA, optional sliding window, RoPE or no position encoding."""

    kind: Literal["attention"] = "attention"
    n_heads: HeadCount
    n_kv_heads: HeadCount | None = None  # None: as many as n_heads (plain MHA)
    head_dim: PositiveDim | None = None  # None: d_model // n_heads
    window: bounded_int(1, MAX_WINDOW) | None = None  # None: global attention
    rope_theta: Annotated[float, Field(gt=0)] | None = 10000.0  # None: no position encoding (NemotronH)
    logit_softcap: Annotated[float, Field(gt=0)] | None = None  # tanh soft-cap on attention logits (Gemma 2)
    query_scale: Annotated[float, Field(gt=0)] | None = None  # None: head_dim ** -0.5
    qk_norm: bool = False  # per-head RMSNorm on q and k (Qwen3)
    qkv_bias: bool = False
    out_bias: bool = False

    @model_validator(mode="after")
    def _check(self) -> "AttentionBlock":
        issues = []
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            issues.append(SpecIssue(("n_kv_heads",), f"n_heads ({self.n_heads}) must be divisible by n_kv_heads",
                                    self.n_kv_heads, f"divisors of {self.n_heads}: {_divisors(self.n_heads)}"))
        if self.head_dim is not None and self.rope_theta is not None and self.head_dim % 2:
            issues.append(SpecIssue(("head_dim",), "RoPE needs an even head_dim", self.head_dim,
                                    "an even number, or rope_theta: null for no position encoding"))
        _raise(issues)
        return self

    def dims(self, d_model: int) -> AttentionDims:
        head_dim = self.head_dim if self.head_dim is not None else d_model // self.n_heads
        return AttentionDims(self.n_heads, self.n_kv_heads or self.n_heads, head_dim)

    def check_against(self, d_model: int) -> list[SpecIssue]:
        if self.head_dim is None:
            if d_model % self.n_heads:
                return [SpecIssue(("n_heads",), f"without head_dim, n_heads must divide d_model ({d_model})",
                                  self.n_heads, "a divisor of d_model, or set head_dim")]
            if self.rope_theta is not None and (d_model // self.n_heads) % 2:
                return [SpecIssue(("n_heads",), f"RoPE needs an even head_dim; d_model / n_heads = "
                                  f"{d_model // self.n_heads}", self.n_heads)]
        return []


ACTIVATIONS = ("relu2", "gelu_tanh", "gelu", "silu", "relu")


@dataclass(frozen=True)
class MlpDims:
    ffn_dim: int


class MlpBlock(_Frozen):
    """Feed-forward block; give exactly one of `ffn_dim` or `ffn_ratio` (ffn_dim = ratio * d_model)."""

    kind: Literal["mlp"] = "mlp"
    ffn_dim: bounded_int(1, 1 << 20) | None = None
    ffn_ratio: Annotated[float, Field(gt=0, le=64)] | None = None
    multiple_of: bounded_int(1, 4096) = 1  # ffn_ratio results are rounded up to this
    activation: Literal["relu2", "gelu_tanh", "gelu", "silu", "relu"] = "relu2"
    gated: bool = False  # GLU form: down(act(gate(x)) * up(x))
    bias: bool = False

    @model_validator(mode="after")
    def _check(self) -> "MlpBlock":
        if (self.ffn_dim is None) == (self.ffn_ratio is None):
            _raise([SpecIssue(("ffn_dim",), "give exactly one of ffn_dim or ffn_ratio",
                              (self.ffn_dim, self.ffn_ratio), "ffn_dim: int, or ffn_ratio: float")])
        return self

    def dims(self, d_model: int) -> MlpDims:
        if self.ffn_dim is not None:
            return MlpDims(self.ffn_dim)
        raw = math.ceil(self.ffn_ratio * d_model - 1e-9)
        return MlpDims(-(-raw // self.multiple_of) * self.multiple_of)

    def check_against(self, d_model: int) -> list[SpecIssue]:
        return []


BlockSpec = Annotated[Union[Mamba2Block, AttentionBlock, MlpBlock], Field(discriminator="kind")]
BLOCK_KINDS = ("mamba2", "attention", "mlp")


def _divisors(n: int) -> str:
    found = [d for d in range(1, n + 1) if n % d == 0]
    return ", ".join(map(str, found[:16])) + (" ..." if len(found) > 16 else "")
