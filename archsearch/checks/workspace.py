"""Transient memory of one chunked-prefill step: what is alive at the peak inside each kind of layer.

Bytes per sequence, as `per_token * T + per_pair * T * K` for a chunk of T queries that sees K keys, so the
whole workspace is linear in the batch. The terms follow the builder's inference path (archsearch.builder
`prefill`, archsearch.blocks) under torch.no_grad, where a temporary dies with its last reference; a = bytes of
the activation dtype. Per token:

- every layer: its input x and the normed copy (2 d a) stay alive through the mixer; RMSNorm itself peaks at
  x, two float32 temporaries and its output (2 d a + 8 d).
- inside the mixer: what each kind's `workspace` method says (archsearch.spec.kinds: Mamba-2's in_proj output,
  conv and scan for each `kernels` setting; attention's projections, RoPE, output, and per (query, key) pair
  the mask and materialised scores, per key the ring copy; the MLP's up/gate/activation). The Mamba-2 terms
  were found with bench/probe_peak.py (live blocks at the peak by allocating line), H100 2026-11-24.
- LM head (after the last layer), as the builder's `prefill(chunk, logits=...)` computes it: logits="last"
  norms the last token only and returns its logits while the chunk's final hidden states stay alive;
  logits="all" norms every chunk token and returns the chunk's logits as computed (V a per token; a logit
  soft-cap holds two more V-sized temporaries).
"""

from __future__ import annotations

from dataclasses import replace

from ..spec.dtypes import dtype_bytes
from ..spec.kinds import BlockKind, LayerWorkspace
from ..spec.kinds.base import FLOAT32

__all__ = ["LayerWorkspace", "layer_workspace", "lm_head_workspace"]


def _norm_peak(d_model: int, a: int) -> float:
    return 2 * d_model * a + 2 * d_model * FLOAT32


def layer_workspace(block: BlockKind, d_model: int, act_dtype: str, kernels: str,
                    materialize_scores: bool) -> LayerWorkspace:
    """One layer's prefill workspace: the pre-norm's peak, or the layer input and its normed copy plus the
    mixer's own peak (the block's kind computes it), whichever is larger."""
    a = dtype_bytes(act_dtype)
    carried = 2 * d_model * a  # the layer input and its normed copy
    mixer = block.workspace(d_model, a, kernels, materialize_scores)
    return replace(mixer, per_token=max(_norm_peak(d_model, a), carried + mixer.per_token))


def lm_head_workspace(d_model: int, vocab_size: int, act_dtype: str, softcap: bool) -> float:
    """Bytes per logit token: final hidden states, their norm, the logits (and the soft-cap's temporaries)."""
    a = dtype_bytes(act_dtype)
    return 2 * d_model * a + max(2 * d_model * FLOAT32, vocab_size * a * (3 if softcap else 1))
