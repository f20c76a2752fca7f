"""Analytic memory of serving a spec: weights + per-sequence caches, states and prefill workspace.

The model is compiled once per (spec, settings) into a few numbers per block symbol, so evaluating it at a
(context, batch) costs a handful of multiplications: fast enough for studies to screen thousands of candidates
a second, and for the largest context to be found by bisection.

Memory(context, batch) = weights + batch * per_sequence(context), per_sequence nondecreasing in context:
- each layer's state as its kind's `state` gives it (archsearch.spec.kinds): the KV cache, 2 * kv_heads *
  head_dim * kept tokens per attention layer (kept = context, or the window); the SSM state (n_heads, head_dim,
  d_state) in state_dtype and conv state (conv_dim, kernel - 1) in act_dtype per Mamba-2 layer;
- the prefill workspace of the last (largest-key) chunk: the widest layer's live tensors (workspace.py) plus
  the chunk's residual stream and the LM-head logits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..spec.accounting import count_parameters, layer_parameters
from ..spec.dtypes import dtype_bytes
from ..spec.model import ModelSpec
from .settings import CheckSettings
from .workspace import LayerWorkspace, layer_workspace, lm_head_workspace

COMPONENTS = ("weights", "kv_cache", "ssm_state", "conv_state", "prefill_workspace")


@dataclass(frozen=True)
class _SymbolTerms:
    symbol: str
    kind: str
    count: int  # layers using this symbol
    weight_bytes: int  # one layer
    kv_per_token: int  # one layer, one sequence
    window: int | None
    ssm_bytes: int  # one layer, one sequence
    conv_bytes: int
    workspace: LayerWorkspace

    def kv_bytes(self, context: int) -> int:
        kept = context if self.window is None else min(context, self.window)
        return self.kv_per_token * kept

    def workspace_bytes(self, chunk: int, context: int) -> float:
        ring = self.window is not None and self.window < context  # the builder's KVCache keeps a ring
        keys = self.window + chunk if ring else context  # a ring layer attends over the ring plus the chunk
        # the eager (CPU) SDPA path needs an explicit mask unless the chunk is the whole causal sequence
        mask = 1 if self.workspace.masked and (context > chunk or self.window is not None) else 0
        copy = self.workspace.per_key_copy * keys if ring else 0.0
        return self.workspace.per_token * chunk + (self.workspace.per_pair_scores + mask) * chunk * keys + copy


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per component, per layer kind and per block symbol at one (context, batch)."""

    context: int
    batch: int
    components: dict[str, int]
    per_kind: dict[str, dict[str, int]]  # kind -> {weights, kv_cache, ssm_state, conv_state}
    per_symbol: dict[str, dict[str, int]]
    workspace_layer: str  # the block symbol whose layer sets the prefill peak ("lm_head" if the logits do)

    @property
    def total(self) -> int:
        return sum(self.components.values())

    def to_dict(self) -> dict:
        return {"context": self.context, "batch": self.batch, "total": self.total,
                "components": dict(self.components), "per_kind": {k: dict(v) for k, v in self.per_kind.items()},
                "per_symbol": {k: dict(v) for k, v in self.per_symbol.items()},
                "workspace_layer": self.workspace_layer}


class MemoryModel:
    """memory(context, batch) = weights + batch * per_sequence(context) for one spec under one settings."""

    def __init__(self, spec: ModelSpec, settings: CheckSettings):
        self.spec = spec
        self.settings = settings
        d = spec.d_model
        param_b, act_b = dtype_bytes(settings.param_dtype), dtype_bytes(settings.act_dtype)
        kv_b, state_b = dtype_bytes(settings.kv_dtype), dtype_bytes(settings.state_dtype)
        params = count_parameters(spec)
        # embedding, LM head (if untied) and the final norm are weights of no layer kind
        self.embedding_weight_bytes = (params.embedding + params.lm_head + params.final_norm) * param_b
        self.weight_bytes = self.embedding_weight_bytes
        counts = Counter(spec.pattern_string)
        materialize = settings.attention_scores == "materialized"
        terms = []
        for symbol, count in counts.items():
            block = spec.blocks[symbol]
            weights = layer_parameters(spec, block) * param_b + block.buffer_bytes(d)
            held = block.state(d, kv_b, state_b, act_b)  # its kind says which states a layer keeps
            terms.append(_SymbolTerms(symbol, block.kind, count, weights, held.kv_per_token, held.window, held.ssm,
                                      held.conv,
                                      layer_workspace(block, d, settings.act_dtype, settings.kernels, materialize)))
        self.terms = tuple(terms)
        self.weight_bytes += sum(t.count * t.weight_bytes for t in terms)
        self._states = sum(t.count * (t.ssm_bytes + t.conv_bytes) for t in terms)
        self._global_kv = sum(t.count * t.kv_per_token for t in terms if t.window is None)
        self._windowed = tuple((t.count * t.kv_per_token, t.window) for t in terms if t.window is not None)

    # ------------------------------------------------------------------------------------------ fast path
    def chunk(self, context: int) -> int:
        return min(self.settings.prefill_chunk, context)

    def workspace_by_symbol(self, context: int) -> dict[str, float]:
        """Bytes per sequence of each block symbol's prefill peak and of the LM head's ("lm_head")."""
        chunk = self.chunk(context)
        out = {t.symbol: t.workspace_bytes(chunk, context) for t in self.terms}
        # the LM head runs after the last layer, when only the final hidden states are alive
        head = lm_head_workspace(self.spec.d_model, self.spec.vocab_size, self.settings.act_dtype,
                                 self.spec.final_logit_softcap is not None)
        logit_tokens = chunk if self.settings.logits == "all" else 1
        out["lm_head"] = head * logit_tokens + (chunk - logit_tokens) * self.spec.d_model * dtype_bytes(self.settings.act_dtype)
        return out

    def workspace(self, context: int) -> tuple[int, str]:
        """Bytes per sequence of the prefill peak, and which layer (symbol) or the LM head sets it."""
        best, where = 0.0, ""
        for name, ws in self.workspace_by_symbol(context).items():
            if ws > best:
                best, where = ws, name
        return int(best), where

    def per_sequence(self, context: int) -> int:
        kv = self._global_kv * context + sum(per_tok * min(context, w) for per_tok, w in self._windowed)
        return kv + self._states + self.workspace(context)[0]

    def total(self, context: int, batch: int) -> int:
        return self.weight_bytes + batch * self.per_sequence(context)

    # ------------------------------------------------------------------------------------------ report
    def breakdown(self, context: int, batch: int) -> MemoryBreakdown:
        per_symbol: dict[str, dict[str, int]] = {}
        per_kind: dict[str, dict[str, int]] = {}
        for t in self.terms:
            row = {"layers": t.count, "weights": t.count * t.weight_bytes,
                   "kv_cache": t.count * t.kv_bytes(context) * batch,
                   "ssm_state": t.count * t.ssm_bytes * batch, "conv_state": t.count * t.conv_bytes * batch}
            per_symbol[t.symbol] = row
            kind = per_kind.setdefault(t.kind, {"layers": 0, "weights": 0, "kv_cache": 0, "ssm_state": 0,
                                                "conv_state": 0})
            for key, value in row.items():
                kind[key] += value
        per_kind["embedding"] = {"layers": 0, "weights": self.embedding_weight_bytes, "kv_cache": 0,
                                 "ssm_state": 0, "conv_state": 0}
        workspace, where = self.workspace(context)
        components = {
            "weights": self.weight_bytes,
            "kv_cache": sum(r["kv_cache"] for r in per_symbol.values()),
            "ssm_state": sum(r["ssm_state"] for r in per_symbol.values()),
            "conv_state": sum(r["conv_state"] for r in per_symbol.values()),
            "prefill_workspace": workspace * batch,
        }
        return MemoryBreakdown(context, batch, components, per_kind, per_symbol, where)
