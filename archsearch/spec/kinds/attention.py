"""The attention kind (GQA/MQA, sliding window, RoPE (scaled or not) or none): its definition and what the
spec says about it.

The built module is archsearch.blocks.Attention; the Hugging Face families map its fields themselves (each has
its own attention options: archsearch.hf.nemotron_h, archsearch.hf.transformer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import SpecIssue
from ..fields import MAX_WINDOW, HeadCount, PositiveDim, bounded_int, divisors, raise_issues
from .base import FLOAT32, BlockKind, LayerWorkspace, StateTerms
from .rope_scaling import RopeScaling


@dataclass(frozen=True)
class AttentionDims:
    n_heads: int
    n_kv_heads: int
    head_dim: int


def visible_keys_mean(seq_len: int, window: int | None) -> float:
    """Mean number of keys a causal query attends to over positions 0..seq_len-1."""
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    # positions below the window see i+1 keys, the rest see `window`
    ramp = window * (window + 1) / 2
    return (ramp + (seq_len - window) * window) / seq_len


class AttentionBlock(BlockKind):
    """Multi-head attention with GQA/MQA, optional sliding window, RoPE or no position encoding."""

    kind: Literal["attention"] = Field("attention", description="attention: GQA/MQA softmax attention")
    label: ClassVar[str] = "attention"
    n_heads: HeadCount = Field(description="query heads")
    n_kv_heads: HeadCount | None = Field(None, description="key/value heads (grouped-query attention); must divide "
                                         "n_heads; null: as many as n_heads (plain multi-head attention)")
    head_dim: PositiveDim | None = Field(None, description="channels per head; null: d_model // n_heads")
    window: bounded_int(1, MAX_WINDOW) | None = Field(None, description="sliding window: each query sees this many "
                                                      "most recent keys (itself included); null: global attention")
    rope_theta: Annotated[float, Field(gt=0)] | None = Field(10000.0, description="RoPE base; null: no position "
                                                             "encoding (NemotronH)")
    # left out of dumps while null, so specs written before the field existed keep their hashes
    rope_scaling: RopeScaling | None = Field(None, exclude_if=lambda value: value is None,
                                             description="RoPE scaling for a context beyond the trained one: "
                                             "{type: linear | yarn | llama3, factor, ...}; null: plain RoPE")
    logit_softcap: Annotated[float, Field(gt=0)] | None = Field(None, description="tanh soft-cap on attention "
                                                                "logits (Gemma 2); null: none")
    query_scale: Annotated[float, Field(gt=0)] | None = Field(None, description="factor on q.k; null: "
                                                              "head_dim ** -0.5")
    qk_norm: bool = Field(False, description="per-head RMSNorm on q and k (Qwen3)")
    qkv_bias: bool = Field(False, description="biases on the q, k and v projections")
    out_bias: bool = Field(False, description="bias on the output projection")

    @model_validator(mode="after")
    def _check(self) -> "AttentionBlock":
        issues = []
        if self.n_kv_heads is not None and self.n_heads % self.n_kv_heads:
            issues.append(SpecIssue(("n_kv_heads",), f"n_heads ({self.n_heads}) must be divisible by n_kv_heads",
                                    self.n_kv_heads, f"divisors of {self.n_heads}: {divisors(self.n_heads)}"))
        if self.head_dim is not None and self.rope_theta is not None and self.head_dim % 2:
            issues.append(SpecIssue(("head_dim",), "RoPE needs an even head_dim", self.head_dim,
                                    "an even number, or rope_theta: null for no position encoding"))
        if self.rope_scaling is not None and self.rope_theta is None:
            issues.append(SpecIssue(("rope_scaling",), "scales RoPE, but rope_theta is null (no RoPE)",
                                    self.rope_scaling.type, "null, or set rope_theta"))
        raise_issues(issues)
        return self

    def dims(self, d_model: int) -> AttentionDims:
        head_dim = self.head_dim if self.head_dim is not None else d_model // self.n_heads
        return AttentionDims(self.n_heads, self.n_kv_heads or self.n_heads, head_dim)

    def check_against(self, d_model: int, max_context: int) -> list[SpecIssue]:
        issues = self._head_dim_issues(d_model)
        if self.window is not None and self.window >= max_context:
            issues.append(SpecIssue(("window",), f"a window must be below max_context ({max_context}); leave it "
                                    "out for global attention", self.window, f"1 .. {max_context - 1}, or null"))
        return issues

    def _head_dim_issues(self, d_model: int) -> list[SpecIssue]:
        if self.head_dim is None:
            if d_model % self.n_heads:
                return [SpecIssue(("n_heads",), f"without head_dim, n_heads must divide d_model ({d_model})",
                                  self.n_heads, "a divisor of d_model, or set head_dim")]
            if self.rope_theta is not None and (d_model // self.n_heads) % 2:
                return [SpecIssue(("n_heads",), f"RoPE needs an even head_dim; d_model / n_heads = "
                                  f"{d_model // self.n_heads}", self.n_heads)]
        return []

    # ------------------------------------------------------------------------------------------ accounting
    def parameters(self, d_model: int) -> int:
        d, a = d_model, self.dims(d_model)
        q, kv = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
        return (d * (q + 2 * kv) + q * d
                + ((q + 2 * kv) if self.qkv_bias else 0) + (d if self.out_bias else 0)
                + (2 * a.head_dim if self.qk_norm else 0))

    def forward_flops(self, d_model: int, seq_len: int, decode: bool) -> float:
        """The weights (2 per parameter: biases and norms are noise), then QK^T and AV over the keys the token
        sees: its window or the whole prefix."""
        a = self.dims(d_model)
        keys = min(seq_len, self.window or seq_len) if decode else visible_keys_mean(seq_len, self.window)
        return 2 * self.parameters(d_model) + 4 * a.n_heads * a.head_dim * keys

    def state(self, d_model: int, kv_bytes: int, state_bytes: int, conv_bytes: int) -> StateTerms:
        """Keys and values of every kept token (a windowed layer keeps only its window)."""
        a = self.dims(d_model)
        return StateTerms(kv_per_token=2 * a.n_kv_heads * a.head_dim * kv_bytes, window=self.window)

    def buffer_bytes(self, d_model: int) -> int:
        """The RoPE frequencies, a float32 buffer per layer."""
        return self.dims(d_model).head_dim // 2 * FLOAT32 if self.rope_theta is not None else 0

    def linears(self, d_model: int) -> list[tuple[str, int, int]]:
        a = self.dims(d_model)
        q, kv = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
        return [("q_proj", d_model, q), ("k_proj", d_model, kv), ("v_proj", d_model, kv), ("o_proj", q, d_model)]

    def workspace(self, d_model: int, act_bytes: int, kernels: str, materialize_scores: bool) -> LayerWorkspace:
        """Per token, a = act_bytes: q, k, v ((Hq + 2 Hkv) hd a); RoPE holds rotated q and k plus three q-sized
        temporaries; the output and its (b, t, h*d) copy (2 Hq hd a) and the log-sum-exp (Hq 4). A windowed
        layer whose cache is a ring concatenates the ring and the chunk's keys and values: 2 Hkv hd a per key
        over window + chunk keys. Per (query, key) pair: with kernels="eager" (CPU) SDPA's boolean mask when a
        chunk does not start at position 0 (1 byte; on CUDA end-aligned causality is `causal_lower_right` and
        rings go to FlexAttention with a block mask from positions, no element mask), and with
        attention_scores="materialized" the float32 scores and their softmax (2 Hq 4)."""
        a, att = act_bytes, self.dims(d_model)
        q, kv = att.n_heads * att.head_dim, att.n_kv_heads * att.head_dim
        projections = (q + 2 * kv) * a
        rope = ((q + kv) + 3 * q) * a if self.rope_theta is not None else 0
        attend = (q + kv) * a * (self.rope_theta is not None) + 2 * q * a + att.n_heads * FLOAT32
        scores = 2 * att.n_heads * FLOAT32 if materialize_scores else 0.0
        return LayerWorkspace(projections + max(rope, attend), scores, masked=kernels == "eager",
                              per_key_copy=2 * kv * a)
