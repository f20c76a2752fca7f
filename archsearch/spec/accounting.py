"""Exact parameter counts and analytic FLOP / inference-state figures, from the spec alone (no torch).

The parameter count is exact: it equals the built model's `sum(p.numel())` and Hugging Face's count for the
same config (tests check both). FLOPs count one multiply-add as 2 and follow the usual conventions:
training = 3 x forward (backward is twice the forward); element-wise work (norms, activations, softmax) is
left out, as in the 6N estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dtypes import dtype_bytes
from .kinds import BlockKind
from .model import ModelSpec


# ---------------------------------------------------------------------------------------------- parameters
def layer_parameters(spec: ModelSpec, block: BlockKind) -> int:
    """One layer: the block's weights (its kind counts them) and the layer's norms."""
    norms = 2 if spec.norm.post_block_norm else 1
    return block.parameters(spec.d_model) + norms * spec.d_model


@dataclass(frozen=True)
class ParamCount:
    total: int
    embedding: int
    lm_head: int  # 0 when tied to the embedding
    final_norm: int
    per_kind: dict[str, int]  # layers of each block kind, their norms included
    per_layer: tuple[int, ...]

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.lm_head

    def to_dict(self) -> dict:
        return {"total": self.total, "embedding": self.embedding, "lm_head": self.lm_head,
                "non_embedding": self.non_embedding, "final_norm": self.final_norm,
                "per_kind": dict(self.per_kind), "per_layer": list(self.per_layer)}


def count_parameters(spec: ModelSpec) -> ParamCount:
    embedding = spec.vocab_size * spec.d_model
    lm_head = 0 if spec.tie_embeddings else embedding
    per_symbol = {s: layer_parameters(spec, b) for s, b in spec.blocks.items()}
    per_layer = tuple(per_symbol[layer.symbol] for layer in spec.layers)
    per_kind: dict[str, int] = {}
    for layer, count in zip(spec.layers, per_layer):
        per_kind[layer.kind] = per_kind.get(layer.kind, 0) + count
    total = embedding + lm_head + spec.d_model + sum(per_layer)
    return ParamCount(total, embedding, lm_head, spec.d_model, per_kind, per_layer)


# ---------------------------------------------------------------------------------------------- FLOPs
def forward_flops_per_token(spec: ModelSpec, seq_len: int, *, decode: bool = False) -> float:
    """Forward FLOPs per token: averaged over a causal sequence of seq_len (training/prefill), or for one
    token decoded at position seq_len (decode=True). Each layer's share is its kind's `forward_flops`."""
    total = 2.0 * spec.vocab_size * spec.d_model  # LM head (the embedding lookup is free)
    for layer in spec.layers:
        total += layer.block.forward_flops(spec.d_model, seq_len, decode)
    return total


def training_flops_per_token(spec: ModelSpec, seq_len: int) -> float:
    return 3.0 * forward_flops_per_token(spec, seq_len)


# ---------------------------------------------------------------------------------------------- inference state
@dataclass(frozen=True)
class LayerState:
    index: int
    symbol: str
    kind: str
    kv_cache: int  # bytes
    ssm_state: int
    conv_state: int

    @property
    def total(self) -> int:
        return self.kv_cache + self.ssm_state + self.conv_state


@dataclass(frozen=True)
class InferenceState:
    context: int
    batch: int
    layers: tuple[LayerState, ...] = field(repr=False)

    @property
    def kv_cache(self) -> int:
        return sum(x.kv_cache for x in self.layers)

    @property
    def ssm_state(self) -> int:
        return sum(x.ssm_state for x in self.layers)

    @property
    def conv_state(self) -> int:
        return sum(x.conv_state for x in self.layers)

    @property
    def total(self) -> int:
        return self.kv_cache + self.ssm_state + self.conv_state

    def per_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for x in self.layers:
            if x.total:
                out[x.kind] = out.get(x.kind, 0) + x.total
        return out

    def to_dict(self) -> dict:
        return {"context": self.context, "batch": self.batch, "kv_cache": self.kv_cache,
                "ssm_state": self.ssm_state, "conv_state": self.conv_state, "total": self.total,
                "per_kind": self.per_kind()}


def inference_state(spec: ModelSpec, context: int, batch: int = 1, *, kv_dtype: str = "bfloat16",
                    state_dtype: str = "float32", conv_dtype: str = "bfloat16") -> InferenceState:
    """Bytes held between decode steps at `context` tokens: KV caches (a windowed layer keeps only its
    window), SSM states and conv states (the last kernel-1 inputs)."""
    kv_b, st_b, cv_b = dtype_bytes(kv_dtype), dtype_bytes(state_dtype), dtype_bytes(conv_dtype)
    rows = []
    for layer in spec.layers:
        held = layer.block.state(spec.d_model, kv_b, st_b, cv_b)
        rows.append(LayerState(layer.index, layer.symbol, layer.kind, held.kv_bytes(context) * batch,
                               held.ssm * batch, held.conv * batch))
    return InferenceState(context, batch, tuple(rows))


def weight_bytes(spec: ModelSpec, dtype: str | None = None) -> int:
    return count_parameters(spec).total * dtype_bytes(dtype or spec.param_dtype)
