"""The built model: embedding, a stack of residual layers, final norm, LM head; full forward, prefill, decode."""

from __future__ import annotations

import torch
from torch import nn

from archsearch.blocks import Embedding, Initializer, LMHead, RMSNorm, ResidualLayer
from archsearch.kernels import backends_used
from archsearch.spec import ModelSpec

from .cache import ModelCache
from .mixers import make_mixer

PREFILL_LOGITS = ("last", "all")


class HybridLM(nn.Module):
    def __init__(self, spec: ModelSpec, device=None, dtype=None):
        super().__init__()
        self.spec = spec
        d, norm = spec.d_model, spec.norm
        kw = dict(device=device, dtype=dtype)
        multiplier = d**0.5 if spec.embedding_multiplier == "sqrt_d_model" else float(spec.embedding_multiplier)
        self.embedding = Embedding(spec.vocab_size, d, multiplier, **kw)
        self.layers = nn.ModuleList(
            ResidualLayer(make_mixer(layer.block, d, norm.eps, device, dtype), d, norm.eps, norm.unit_offset,
                          norm.post_block_norm, **kw)
            for layer in spec.layers)
        self.final_norm = RMSNorm(d, norm.eps, norm.unit_offset, **kw)
        self.lm_head = LMHead(spec.vocab_size, d, self.embedding if spec.tie_embeddings else None,
                              spec.final_logit_softcap, **kw)

    # ------------------------------------------------------------------------------------------ init
    def init_weights(self, seed: int) -> None:
        init = self.spec.init
        out_std = init.std / (2 * self.spec.n_layers) ** 0.5 if init.scale_output_projections else init.std
        rng = Initializer.from_seed(seed, init.std, out_std, init.embedding_std or init.std)
        rng.normal_(self.embedding.weight, rng.embedding_std)
        for layer in self.layers:
            layer.norm.reset_parameters()
            if layer.post_norm is not None:
                layer.post_norm.reset_parameters()
            layer.mixer.init_weights(rng)
        self.final_norm.reset_parameters()
        if not self.lm_head.tied:
            rng.normal_(self.lm_head.weight, rng.std)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, input_ids_BT: torch.Tensor) -> torch.Tensor:
        """Logits (b, t, vocab) of a whole sequence, no cache."""
        return self.forward_through(input_ids_BT, self.layers)

    def forward_through(self, input_ids_BT: torch.Tensor, layers) -> torch.Tensor:
        """`forward` with `layers` (one callable per layer, e.g. each layer compiled on its own) in place of
        self.layers."""
        x_BTD = self.embedding(input_ids_BT)
        for layer in layers:
            x_BTD = layer(x_BTD)
        return self.lm_head(self.final_norm(x_BTD))

    def backends_used(self) -> dict[str, str]:
        """{op: backend} of the kernel calls that ran (archsearch.kernels records them process-wide)."""
        return backends_used()

    # ------------------------------------------------------------------------------------------ inference
    def allocate_cache(self, batch: int, max_len: int, device=None, dtype=None) -> ModelCache:
        """Preallocated states: KV caches (windowed layers: a ring of their window), SSM states (float32) and
        conv states for Mamba-2 layers. dtype/device default to the model's."""
        ref = self.embedding.weight
        device = ref.device if device is None else torch.device(device)
        dtype = ref.dtype if dtype is None else dtype
        if max_len < 1 or batch < 1:
            raise ValueError(f"allocate_cache: batch ({batch}) and max_len ({max_len}) must be >= 1")
        states = [layer.mixer.allocate_cache(batch, max_len, device, dtype) for layer in self.layers]
        return ModelCache(batch, max_len, states)

    @torch.no_grad()
    def prefill(self, input_ids_BT: torch.Tensor, cache: ModelCache, chunk_size: int | None = None,
                logits: str = "last") -> torch.Tensor:
        """Consume input_ids (b, t) after the cache's current position, `chunk_size` tokens at a time (None: all
        at once). logits="last" (default, what generation needs and serving engines compute): the last token's
        logits (b, 1, vocab), the LM head applied to that token only; "all": every token's (b, t, vocab), one
        chunk's logits returned as computed, several chunks written into one (b, t, vocab) output."""
        if logits not in PREFILL_LOGITS:
            raise ValueError(f"prefill: logits={logits!r} is not allowed; allowed: {', '.join(PREFILL_LOGITS)}")
        b, t = input_ids_BT.shape
        self._check_room(cache, input_ids_BT)
        step = t if chunk_size is None else chunk_size
        if step < 1:
            raise ValueError(f"prefill: chunk_size must be None or >= 1, got {chunk_size}")
        starts = range(0, t, step)
        if logits == "last":
            for i in starts[:-1]:  # nothing of an earlier chunk stays alive
                self._hidden(input_ids_BT[:, i:i + step], cache)
            x_BTD = self._hidden(input_ids_BT[:, starts[-1]:], cache)
            return self._head(x_BTD[:, -1:])
        if len(starts) == 1:
            return self._head(self._hidden(input_ids_BT, cache))
        out_BTV = None
        for i in starts:
            chunk_BTV = self._head(self._hidden(input_ids_BT[:, i:i + step], cache))
            if out_BTV is None:
                out_BTV = chunk_BTV.new_empty(b, t, chunk_BTV.shape[-1])
            out_BTV[:, i:i + chunk_BTV.shape[1]] = chunk_BTV
            del chunk_BTV
        return out_BTV

    @torch.no_grad()
    def decode_step(self, token_ids_B1: torch.Tensor, cache: ModelCache) -> torch.Tensor:
        """One token per sequence (b, 1) -> logits (b, 1, vocab); the cache advances by one."""
        if token_ids_B1.dim() != 2 or token_ids_B1.shape[1] != 1:
            raise ValueError(f"decode_step: token_ids must be (batch, 1), got {tuple(token_ids_B1.shape)}")
        self._check_room(cache, token_ids_B1)
        return self._step(token_ids_B1, cache)

    def _check_room(self, cache: ModelCache, ids_BT: torch.Tensor) -> None:
        if ids_BT.shape[0] != cache.batch:
            raise ValueError(f"batch {ids_BT.shape[0]} does not match the cache's batch {cache.batch}")
        if cache.seq_len + ids_BT.shape[1] > cache.max_len:
            raise ValueError(f"cache holds {cache.max_len} tokens; {cache.seq_len} used, {ids_BT.shape[1]} more "
                             "do not fit")

    def _step(self, ids_BT: torch.Tensor, cache: ModelCache) -> torch.Tensor:
        return self._head(self._hidden(ids_BT, cache))

    def _hidden(self, ids_BT: torch.Tensor, cache: ModelCache) -> torch.Tensor:
        """The last layer's output for ids after the cache's position; the cache advances."""
        x_BTD = self.embedding(ids_BT)
        for layer, state in zip(self.layers, cache.layers):
            x_BTD = layer(x_BTD, state, cache.seq_len)
        cache.seq_len += ids_BT.shape[1]
        return x_BTD

    def _head(self, x_BTD: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.final_norm(x_BTD))
