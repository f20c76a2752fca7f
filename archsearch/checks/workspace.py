"""Transient memory of one chunked-prefill step: what is alive at the peak inside each kind of layer.

The figures are bytes per sequence, as `per_token * T + per_pair * T * K` for a chunk of T queries that sees
K keys, so the whole workspace is linear in the batch. Each term names the tensor it stands for; they follow
the builder's eager inference path (archsearch.builder / archsearch.blocks) under torch.no_grad, where a
temporary dies when its last reference goes:

- residual stream: the layer input x and its normed copy h (B, T, d) are alive through the block.
- Mamba-2: the in_proj output zxbcdt (B, T, in_proj) stays alive (z, x, B, C, dt are views of it) while the
  conv runs on a channel-first copy of xBC and writes a new (B, T, conv_dim); the SSD scan then holds its
  float32 chunk states (B, T/chunk, H, P, N) and C.B^T (B, T/chunk, G, chunk, chunk) next to its output y
  (B, T, H*P); the gated norm computes in float32 (two (B, T, d_inner) float32 temporaries).
- attention: q, k, v for the chunk and the output; RoPE makes rotated copies of q and k; with a
  materialising backend the float32 scores (B, H, T, K) and their softmax.
- MLP: the up projection, the activation's temporary and its result (B, T, ffn) (relu2 = relu then square;
  the gated form holds gate, up and their product at its peak).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.accounting import dtype_bytes
from ..spec.blocks import AttentionBlock, Mamba2Block, MlpBlock

FLOAT32 = 4


@dataclass(frozen=True)
class LayerWorkspace:
    per_token: float  # bytes per chunk token
    per_pair: float  # bytes per (query, key) pair: materialised scores


def layer_workspace(block, d_model: int, act_dtype: str, materialize_scores: bool) -> LayerWorkspace:
    a = dtype_bytes(act_dtype)
    residual = 2 * d_model * a
    if isinstance(block, Mamba2Block):
        m = block.dims(d_model)
        scan_states = m.n_heads * m.head_dim * m.d_state * FLOAT32 / block.chunk_size
        scan_cb = m.n_groups * block.chunk_size * FLOAT32
        peak = (m.in_proj_dim * a + m.conv_dim * a
                + max(m.conv_dim * a,  # the conv: its channel-first input copy
                      scan_states + scan_cb + m.d_inner * a,  # the scan
                      2 * m.d_inner * FLOAT32 + m.d_inner * a))  # the gated norm
        return LayerWorkspace(residual + peak, 0.0)
    if isinstance(block, AttentionBlock):
        att = block.dims(d_model)
        q, kv = att.n_heads * att.head_dim, att.n_kv_heads * att.head_dim
        rope = (q + kv) * a if block.rope_theta is not None else 0
        per_token = residual + (q + 2 * kv) * a + rope + q * a
        per_pair = 2 * att.n_heads * FLOAT32 if materialize_scores else 0.0
        return LayerWorkspace(per_token, per_pair)
    assert isinstance(block, MlpBlock)
    f = block.dims(d_model).ffn_dim
    live = 3 if (block.gated or block.activation == "relu2") else 2
    return LayerWorkspace(residual + live * f * a, 0.0)


def logits_workspace(vocab_size: int, act_dtype: str, tokens: int) -> float:
    """The LM head's output for `tokens` tokens and its float32 copy."""
    return tokens * vocab_size * (dtype_bytes(act_dtype) + FLOAT32)
