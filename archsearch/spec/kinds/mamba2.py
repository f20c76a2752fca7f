"""The Mamba-2 mixer (SSD) kind: its definition and everything the spec alone says about it.

The built module is archsearch.blocks.Mamba2Mixer; the Hugging Face mapping of its fields (shared by the
NemotronH and Mamba2 families) is archsearch.hf._mamba.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..errors import SpecIssue
from ..fields import MAX_HEADS, HeadCount, PositiveDim, bounded_int, divisors, raise_issues
from .base import FLOAT32, BlockKind, LayerWorkspace, StateTerms


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


class Mamba2Block(BlockKind):
    """Mamba-2 mixer (SSD). Give exactly one of `n_heads` or `expand` (d_inner = expand * d_model)."""

    kind: Literal["mamba2"] = Field("mamba2", description="mamba2: a Mamba-2 (SSD) mixer")
    label: ClassVar[str] = "Mamba-2"
    relative_fields: ClassVar[tuple[str, ...]] = ("expand",)
    n_heads: HeadCount | None = Field(None, description="SSM heads (d_inner = n_heads x head_dim); give this or "
                                      "expand")
    expand: Annotated[float, Field(gt=0, le=64)] | None = Field(None, description="d_inner = expand x d_model; give "
                                                                "this or n_heads")
    head_dim: PositiveDim = Field(64, description="channels per SSM head")
    d_state: bounded_int(1, 1024) = Field(128, description="SSM state size per head (N)")
    n_groups: HeadCount = Field(1, description="groups sharing B and C (must divide n_heads)")
    conv_kernel: bounded_int(2, 16) = Field(4, description="width of the causal depthwise conv")
    chunk_size: bounded_int(1, 4096) = Field(256, description="SSD scan chunk length (speed only, same result)")
    dt_min: Annotated[float, Field(gt=0)] = Field(0.001, description="lower end of the dt init range")
    dt_max: Annotated[float, Field(gt=0)] = Field(0.1, description="upper end of the dt init range")
    dt_init_floor: Annotated[float, Field(gt=0)] = Field(1e-4, description="smallest dt at init")
    dt_limit: tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(gt=0)]] | None = Field(
        None, description="[low, high] clamp of dt in the forward pass; null: no clamp")
    A_init_range: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]] = Field(
        (1.0, 16.0), description="[low, high] range of the decay rates A at init")
    gated_norm: bool = Field(True, description="RMSNorm(y * silu(z)) per group before out_proj, as Mamba-2 and "
                             "NemotronH do")
    conv_bias: bool = Field(True, description="bias on the conv")
    bias: bool = Field(False, description="biases on in_proj and out_proj")

    @model_validator(mode="after")
    def _check(self) -> "Mamba2Block":
        issues = []
        if (self.n_heads is None) == (self.expand is None):
            issues.append(SpecIssue(("n_heads",), "give exactly one of n_heads or expand",
                                    (self.n_heads, self.expand), "n_heads: int, or expand: float"))
        if self.n_heads is not None and self.n_heads % self.n_groups:
            issues.append(SpecIssue(("n_groups",), f"n_groups must divide n_heads ({self.n_heads})", self.n_groups,
                                    f"divisors of {self.n_heads}: {divisors(self.n_heads)}"))
        if self.dt_min >= self.dt_max:
            issues.append(SpecIssue(("dt_min",), f"dt_min must be below dt_max ({self.dt_max})", self.dt_min))
        low, high = self.A_init_range
        if low > high:
            issues.append(SpecIssue(("A_init_range",), "must be (low, high) with low <= high", self.A_init_range))
        if self.dt_limit is not None and self.dt_limit[0] >= self.dt_limit[1]:
            issues.append(SpecIssue(("dt_limit",), "must be (low, high) with low < high", self.dt_limit))
        raise_issues(issues)
        return self

    def dims(self, d_model: int) -> Mamba2Dims:
        if self.n_heads is not None:
            n_heads = self.n_heads
        else:
            n_heads = round(self.expand * d_model / self.head_dim)
        return Mamba2Dims(n_heads, self.head_dim, n_heads * self.head_dim, self.d_state, self.n_groups,
                          self.conv_kernel)

    def check_against(self, d_model: int, max_context: int) -> list[SpecIssue]:
        if self.expand is None:
            return []
        d_inner = self.expand * d_model
        if not math.isclose(d_inner, round(d_inner)) or round(d_inner) % self.head_dim:
            return [SpecIssue(("expand",), f"expand * d_model ({d_inner:g}) must be a multiple of head_dim "
                              f"({self.head_dim})", self.expand)]
        n_heads = round(d_inner) // self.head_dim
        if n_heads % self.n_groups:
            return [SpecIssue(("n_groups",), f"n_groups must divide the number of heads ({n_heads} = expand * "
                              f"d_model / head_dim)", self.n_groups, f"divisors of {n_heads}: {divisors(n_heads)}")]
        if n_heads > MAX_HEADS:
            return [SpecIssue(("expand",), f"gives {n_heads} heads, more than {MAX_HEADS}", self.expand)]
        return []

    # ------------------------------------------------------------------------------------------ accounting
    def parameters(self, d_model: int) -> int:
        d, m = d_model, self.dims(d_model)
        return (d * m.in_proj_dim + (m.in_proj_dim if self.bias else 0)
                + m.conv_dim * m.conv_kernel + (m.conv_dim if self.conv_bias else 0)
                + 3 * m.n_heads  # dt_bias, A_log, D
                + (m.d_inner if self.gated_norm else 0)
                + m.d_inner * d + (d if self.bias else 0))

    def forward_flops(self, d_model: int, seq_len: int, decode: bool) -> float:
        """The projections, the conv, writing and reading the state, and (chunked scan, not decode) the
        quadratic part inside a chunk over the mean number of causal partners there."""
        m = self.dims(d_model)
        conv = 2 * m.conv_dim * m.conv_kernel
        matmul = 2 * d_model * (m.in_proj_dim + m.d_inner)
        states = 4 * m.n_heads * m.head_dim * m.d_state  # write the state, read the output from it
        intra = 0.0
        if not decode:  # C.B^T, then its product with x
            chunk_tokens = (min(self.chunk_size, seq_len) + 1) / 2
            intra = 2 * chunk_tokens * (m.n_groups * m.d_state + m.n_heads * m.head_dim)
        return matmul + conv + states + intra

    def state(self, d_model: int, kv_bytes: int, state_bytes: int, conv_bytes: int) -> StateTerms:
        m = self.dims(d_model)
        return StateTerms(ssm=m.n_heads * m.head_dim * m.d_state * state_bytes,
                          conv=m.conv_dim * (m.conv_kernel - 1) * conv_bytes)

    def linears(self, d_model: int) -> list[tuple[str, int, int]]:
        m = self.dims(d_model)
        return [("in_proj", d_model, m.in_proj_dim), ("out_proj", m.d_inner, d_model)]

    def workspace(self, d_model: int, act_bytes: int, kernels: str, materialize_scores: bool) -> LayerWorkspace:
        """Per token, a = act_bytes: the in_proj output zxbcdt (E a; z, x, B, C and dt are views of it) lives to
        the end. The conv holds the left-padded input, its output and the SiLU (3 C a); from then to the
        layer's end the conv output and the padded copy whose tail became the cache's conv state stay
        referenced (2 C a). Beside those:
          kernels="fused" (mamba-ssm's Triton scan and gated norm): dt and the dA cumsum (float32, 8 H), B and C
          made contiguous (2 G N a), the chunk states in float32 beside the passed states in the activation
          dtype ((4 + a) H P N / chunk), then y (I a) beside the passed states and C.B^T (G chunk 4);
          kernels="eager" (our chunked PyTorch scan, float32 inside): y, x, x*dt, y twice (5 I 4), B and C
          expanded to heads (2 H N 4), the decay and score blocks (2 H chunk 4) and three copies of the chunk
          states; the gated norm in float32 (3 I 4).
        At the layer's end y, the gated norm's output and out_proj's output (2 I a + d a) are alive together.
        Found with bench/probe_peak.py (live blocks at the peak by allocating line), H100 2026-11-24."""
        a, m = act_bytes, self.dims(d_model)
        E, C, I, Q = m.in_proj_dim, m.conv_dim, m.d_inner, self.chunk_size
        H, G, N = m.n_heads, m.n_groups, m.d_state
        hpn = H * m.head_dim * N
        # Held from the conv to the layer's end (blocks/mamba2.py keeps them referenced): the conv output (x, B,
        # C are views of it) and the padded copy whose last k-1 columns became the cache's conv state.
        held = 2 * C * a
        end = held + 2 * I * a + d_model * a  # y, the gated norm's output, out_proj's output
        conv = 3 * C * a
        if kernels == "fused":
            # mamba-ssm: dt and the dA cumsum (float32 per head), B and C made contiguous; the chunk states in
            # float32 beside the passed states (activation dtype); then y beside the passed states and C.B^T.
            scan = held + 8 * H + 2 * G * N * a + max((FLOAT32 + a) * hpn / Q, I * a + a * hpn / Q + G * Q * FLOAT32)
            norm = held + 2 * I * a
        else:
            scan = (held + I * a + 5 * I * FLOAT32 + 2 * H * N * FLOAT32 + 2 * H * Q * FLOAT32
                    + 3 * hpn * FLOAT32 / Q)
            norm = held + I * a + 3 * I * FLOAT32 + I * a
        return LayerWorkspace(E * a + max(conv, scan, norm, end), 0.0)
