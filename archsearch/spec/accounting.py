"""Exact parameter counts and analytic FLOP / inference-state figures, from the spec alone (no torch).

The parameter count is exact: it equals the built model's `sum(p.numel())` and Hugging Face's count for the
same config (tests check both). FLOPs count one multiply-add as 2 and follow the usual conventions:
training = 3 x forward (backward is twice the forward); element-wise work (norms, activations, softmax) is
left out, as in the 6N estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .blocks import AttentionBlock, Mamba2Block, MlpBlock
from .model import ModelSpec

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float8": 1}


def dtype_bytes(name: str) -> int:
    try:
        return DTYPE_BYTES[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; allowed: {', '.join(DTYPE_BYTES)}") from None


# ---------------------------------------------------------------------------------------------- parameters
def block_parameters(block: Mamba2Block | AttentionBlock | MlpBlock, d_model: int) -> int:
    """Weights of one block's mixer or MLP, without the layer's norms."""
    d = d_model
    if isinstance(block, Mamba2Block):
        m = block.dims(d)
        return (d * m.in_proj_dim + (m.in_proj_dim if block.bias else 0)
                + m.conv_dim * m.conv_kernel + (m.conv_dim if block.conv_bias else 0)
                + 3 * m.n_heads  # dt_bias, A_log, D
                + (m.d_inner if block.gated_norm else 0)
                + m.d_inner * d + (d if block.bias else 0))
    if isinstance(block, AttentionBlock):
        a = block.dims(d)
        q, kv = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
        return (d * (q + 2 * kv) + q * d
                + ((q + 2 * kv) if block.qkv_bias else 0) + (d if block.out_bias else 0)
                + (2 * a.head_dim if block.qk_norm else 0))
    f = block.dims(d).ffn_dim
    n_in = 2 if block.gated else 1
    return n_in * d * f + f * d + ((n_in * f + d) if block.bias else 0)


def layer_parameters(spec: ModelSpec, block) -> int:
    norms = 2 if spec.norm.post_block_norm else 1
    return block_parameters(block, spec.d_model) + norms * spec.d_model


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
def _visible_keys_mean(seq_len: int, window: int | None) -> float:
    """Mean number of keys a causal query attends to over positions 0..seq_len-1."""
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    # positions below the window see i+1 keys, the rest see `window`
    ramp = window * (window + 1) / 2
    return (ramp + (seq_len - window) * window) / seq_len


def block_forward_flops(block, d_model: int, keys: float, ssd_chunk_tokens: float | None) -> float:
    """Forward FLOPs for one token through one block.

    keys: how many keys this token attends to (attention); ssd_chunk_tokens: mean causal partners within a
    chunk for the chunked SSD scan, or None for the recurrent (decode) form.
    """
    matmul = 2 * (block_parameters(block, d_model))  # weights dominate; biases and norms are noise
    if isinstance(block, AttentionBlock):
        a = block.dims(d_model)
        return matmul + 4 * a.n_heads * a.head_dim * keys  # QK^T and AV
    if isinstance(block, Mamba2Block):
        m = block.dims(d_model)
        conv = 2 * m.conv_dim * m.conv_kernel
        matmul = 2 * d_model * (m.in_proj_dim + m.d_inner)
        states = 4 * m.n_heads * m.head_dim * m.d_state  # write the state, read the output from it
        intra = 0.0
        if ssd_chunk_tokens is not None:  # the quadratic part inside a chunk: C.B^T, then its product with x
            intra = 2 * ssd_chunk_tokens * (m.n_groups * m.d_state + m.n_heads * m.head_dim)
        return matmul + conv + states + intra
    return matmul


def forward_flops_per_token(spec: ModelSpec, seq_len: int, *, decode: bool = False) -> float:
    """Forward FLOPs per token: averaged over a causal sequence of seq_len (training/prefill), or for one
    token decoded at position seq_len (decode=True)."""
    total = 2.0 * spec.vocab_size * spec.d_model  # LM head (the embedding lookup is free)
    for layer in spec.layers:
        block = layer.block
        if isinstance(block, AttentionBlock):
            keys = min(seq_len, block.window or seq_len) if decode else _visible_keys_mean(seq_len, block.window)
            total += block_forward_flops(block, spec.d_model, keys, None)
        elif isinstance(block, Mamba2Block):
            chunk = min(block.chunk_size, seq_len)
            total += block_forward_flops(block, spec.d_model, 0, None if decode else (chunk + 1) / 2)
        else:
            total += block_forward_flops(block, spec.d_model, 0, None)
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
        block = layer.block
        kv = ssm = conv = 0
        if isinstance(block, AttentionBlock):
            a = block.dims(spec.d_model)
            kept = min(context, block.window) if block.window else context
            kv = 2 * a.n_kv_heads * a.head_dim * kept * batch * kv_b
        elif isinstance(block, Mamba2Block):
            m = block.dims(spec.d_model)
            ssm = m.n_heads * m.head_dim * m.d_state * batch * st_b
            conv = m.conv_dim * (m.conv_kernel - 1) * batch * cv_b
        rows.append(LayerState(layer.index, layer.symbol, layer.kind, kv, ssm, conv))
    return InferenceState(context, batch, tuple(rows))


def weight_bytes(spec: ModelSpec, dtype: str | None = None) -> int:
    return count_parameters(spec).total * dtype_bytes(dtype or spec.param_dtype)
