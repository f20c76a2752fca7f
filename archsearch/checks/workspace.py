"""Transient memory of one chunked-prefill step: what is alive at the peak inside each kind of layer.

Bytes per sequence, as `per_token * T + per_pair * T * K` for a chunk of T queries that sees K keys, so the
whole workspace is linear in the batch. The terms follow the builder's inference path (archsearch.builder
`prefill`, archsearch.blocks) under torch.no_grad, where a temporary dies with its last reference; a = bytes of
the activation dtype. Per token:

- every layer: its input x and the normed copy (2 d a) stay alive through the mixer; RMSNorm itself peaks at
  x, two float32 temporaries and its output (2 d a + 8 d).
- Mamba-2: the in_proj output zxbcdt (E a; z, x, B, C and dt are views of it) lives to the end. The conv holds
  the left-padded input, its output and the SiLU (3 C a); from then to the layer's end the conv output and the
  padded copy whose tail became the cache's conv state stay referenced (2 C a). Beside those:
    kernels="fused" (mamba-ssm's Triton scan and gated norm): dt and the dA cumsum (float32, 8 H), B and C made
    contiguous (2 G N a), the chunk states in float32 beside the passed states in the activation dtype
    ((4 + a) H P N / chunk), then y (I a) beside the passed states and C.B^T (G chunk 4);
    kernels="eager" (our chunked PyTorch scan, float32 inside): y, x, x*dt, y twice (5 I 4), B and C expanded
    to heads (2 H N 4), the decay and score blocks (2 H chunk 4) and three copies of the chunk states; the
    gated norm in float32 (3 I 4).
  At the layer's end y, the gated norm's output and out_proj's output (2 I a + d a) are alive together. Found
  with bench/probe_peak.py (live blocks at the peak by allocating line), H100 2026-11-24.
- attention: q, k, v (Hq + 2 Hkv) hd a; RoPE holds rotated q and k plus three q-sized temporaries; the
  output and its (b, t, h*d) copy (2 Hq hd a) and the log-sum-exp (Hq 4). A windowed layer whose cache is a
  ring concatenates the ring and the chunk's keys and values: 2 Hkv hd a per key over window + chunk keys.
  Per (query, key) pair: with kernels="eager" (CPU) SDPA's boolean mask when a chunk does not start at
  position 0 (1 byte; on CUDA end-aligned causality is `causal_lower_right` and rings go to FlexAttention
  with a block mask from positions, no element mask), and with attention_scores="materialized" the float32
  scores and their softmax (2 Hq 4).
- MLP: up, the activation's temporary and its result (3 F a; relu2 = relu then square; the gated form holds
  up, gate and act(gate)); a one-step activation holds 2 F a.
- LM head (after the last layer), as the builder's `prefill(chunk, logits=...)` computes it: logits="last"
  norms the last token only and returns its logits while the chunk's final hidden states stay alive;
  logits="all" norms every chunk token and returns the chunk's logits as computed (V a per token; a logit
  soft-cap holds two more V-sized temporaries).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..spec.accounting import dtype_bytes
from ..spec.blocks import AttentionBlock, Mamba2Block, MlpBlock

FLOAT32 = 4


@dataclass(frozen=True)
class LayerWorkspace:
    per_token: float  # bytes per chunk token
    per_pair_scores: float  # bytes per (query, key) pair of materialised scores
    masked: bool = False  # attention: SDPA gets a boolean (T, K) mask (1 byte a pair) when it needs one
    per_key_copy: float = 0.0  # attention with a ring cache: bytes per key of the concatenated keys + values


def _norm_peak(d_model: int, a: int) -> float:
    return 2 * d_model * a + 2 * d_model * FLOAT32


def _mamba_peak(block: Mamba2Block, d_model: int, a: int, kernels: str) -> float:
    m = block.dims(d_model)
    E, C, I, Q = m.in_proj_dim, m.conv_dim, m.d_inner, block.chunk_size
    H, G, N = m.n_heads, m.n_groups, m.d_state
    hpn = H * m.head_dim * N
    # Held from the conv to the layer's end (blocks/mamba2.py keeps them referenced): the conv output (x, B, C
    # are views of it) and the padded copy whose last k-1 columns became the cache's conv state.
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
    return E * a + max(conv, scan, norm, end)


def layer_workspace(block, d_model: int, act_dtype: str, kernels: str, materialize_scores: bool) -> LayerWorkspace:
    a = dtype_bytes(act_dtype)
    carried = 2 * d_model * a  # the layer input and its normed copy
    norm = _norm_peak(d_model, a)
    if isinstance(block, Mamba2Block):
        return LayerWorkspace(max(norm, carried + _mamba_peak(block, d_model, a, kernels)), 0.0)
    if isinstance(block, AttentionBlock):
        att = block.dims(d_model)
        q, kv = att.n_heads * att.head_dim, att.n_kv_heads * att.head_dim
        projections = (q + 2 * kv) * a
        rope = ((q + kv) + 3 * q) * a if block.rope_theta is not None else 0
        attend = (q + kv) * a * (block.rope_theta is not None) + 2 * q * a + att.n_heads * FLOAT32
        scores = 2 * att.n_heads * FLOAT32 if materialize_scores else 0.0
        return LayerWorkspace(max(norm, carried + projections + max(rope, attend)), scores,
                              masked=kernels == "eager", per_key_copy=2 * kv * a)
    assert isinstance(block, MlpBlock)
    f = block.dims(d_model).ffn_dim
    live = 3 if (block.gated or block.activation == "relu2") else 2
    return LayerWorkspace(max(norm, carried + live * f * a), 0.0)


def lm_head_workspace(d_model: int, vocab_size: int, act_dtype: str, softcap: bool) -> float:
    """Bytes per logit token: final hidden states, their norm, the logits (and the soft-cap's temporaries)."""
    a = dtype_bytes(act_dtype)
    return 2 * d_model * a + max(2 * d_model * FLOAT32, vocab_size * a * (3 if softcap else 1))
