"""What every block kind answers, from its spec alone (no torch): the contract of a row of `KINDS`.

A kind is one pydantic model (the block definition a pattern symbol stands for) whose methods give its sizes,
exact parameter count, FLOPs, inference state, prefill workspace and Linear shapes. Every consumer (accounting,
the memory model, the builder's checks) calls these methods; none asks which kind a block is.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import SpecIssue
from ..fields import Frozen

FLOAT32 = 4  # bytes


@dataclass(frozen=True)
class StateTerms:
    """Bytes one layer holds between decode steps for one sequence."""

    kv_per_token: int = 0  # KV cache bytes per kept token
    window: int | None = None  # tokens kept: all (None) or the last `window`
    ssm: int = 0  # recurrent state
    conv: int = 0  # the conv's last kernel-1 inputs

    def kv_bytes(self, context: int) -> int:
        kept = context if self.window is None else min(context, self.window)
        return self.kv_per_token * kept


@dataclass(frozen=True)
class LayerWorkspace:
    """Transient bytes of one layer during a chunked-prefill step (archsearch.checks.workspace explains them)."""

    per_token: float  # bytes per chunk token
    per_pair_scores: float  # bytes per (query, key) pair of materialised scores
    masked: bool = False  # attention: SDPA gets a boolean (T, K) mask (1 byte a pair) when it needs one
    per_key_copy: float = 0.0  # attention with a ring cache: bytes per key of the concatenated keys + values


class BlockKind(Frozen):
    """Base of every block definition. A subclass sets `kind: Literal["name"] = "name"`, its `label` and the
    methods below."""

    label: ClassVar[str]  # how reports name the kind ("Mamba-2")
    # Fields that only size the block relative to d_model (`expand`, `ffn_ratio`): `resolved` drops them.
    relative_fields: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def dims(self, d_model: int):
        """The block's sizes as plain integers, relative sizes (`expand`, `ffn_ratio`, ...) resolved."""

    def resolved(self, d_model: int) -> dict[str, Any]:
        """The block as plain data with its sizes resolved against d_model: each field that `dims` also holds
        takes its resolved value and the relative fields drop out, so two definitions that build the same module
        (`expand: 2` and `n_heads: 4` at d_model 128, head_dim 64) give the same dict."""
        data = self.model_dump(mode="json", exclude=set(self.relative_fields))
        dims = self.dims(d_model)
        data.update({name: getattr(dims, name) for name in data if name != "kind" and hasattr(dims, name)})
        return data

    def check_against(self, d_model: int, max_context: int) -> list[SpecIssue]:
        """Problems that only show against the model's d_model and max_context (paths relative to the block)."""
        return []

    @abstractmethod
    def parameters(self, d_model: int) -> int:
        """Exact weights of the block's mixer or MLP, without the layer's norms (= the built module's numel)."""

    @abstractmethod
    def forward_flops(self, d_model: int, seq_len: int, decode: bool) -> float:
        """Forward FLOPs of one token (a multiply-add is 2): averaged over a causal sequence of seq_len, or for
        one token decoded at position seq_len (decode=True)."""

    def state(self, d_model: int, kv_bytes: int, state_bytes: int, conv_bytes: int) -> StateTerms:
        """Inference state of one layer, one sequence, given the bytes per element of each state's dtype."""
        return StateTerms()

    def buffer_bytes(self, d_model: int) -> int:
        """Persistent non-parameter buffers of the built module (float32 RoPE frequencies, ...)."""
        return 0

    @abstractmethod
    def workspace(self, d_model: int, act_bytes: int, kernels: str, materialize_scores: bool) -> LayerWorkspace:
        """Transient prefill bytes inside the mixer, beyond the layer input and its normed copy that the
        residual layer keeps alive (archsearch.checks.workspace adds those and the norm's own peak)."""

    @abstractmethod
    def linears(self, d_model: int) -> list[tuple[str, int, int]]:
        """(name, in, out) of each nn.Linear of the built mixer, by its attribute name."""
