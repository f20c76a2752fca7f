"""Compression (after MAD): a random sequence, then a compression token; afterwards only position tokens come, and
for each the model must name the token that stood at that position. Whatever the model keeps of the prefix has
to pass the compression point (MAD decodes one pooled token with an MLP; a language model answers queries).

Ids: content 0 .. vocab-1, pad = vocab, compress = vocab + 1, position i = vocab + 2 + i. Sequences shorter than
seq_len are left-padded."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, need


class CompressionOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=2, description="content tokens")] = 16
    n_tokens: Annotated[int, Field(ge=1)] | None = Field(None, description="tokens before the compression token "
                                                         "(None: as many as fit, (seq_len - 1) // 2)")


class Compression(SyntheticTask):
    name = "compression"
    Options = CompressionOptions
    description = "compression (after MAD): recall any prefix token by its position after a compression token"

    def __init__(self, options: CompressionOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        self.n = options.n_tokens if options.n_tokens is not None else (seq_len - 1) // 2
        need(self.name, self.n >= 1 and 2 * self.n + 1 <= seq_len,
             f"seq_len {seq_len} cannot hold {self.n} tokens, the compression token and {self.n} queries: needs "
             f">= {2 * max(self.n, 1) + 1}")

    @property
    def vocab_size(self) -> int:
        return self.options.vocab + 2 + self.n

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        n, vocab = self.n, self.options.vocab
        content_BN = torch.randint(0, vocab, (batch_size, n), generator=gen)
        order_BN = torch.rand(batch_size, n, generator=gen).argsort(dim=1)
        pad = self.seq_len - 2 * n - 1
        ids_BT = torch.full((batch_size, self.seq_len), vocab, dtype=torch.long)
        ids_BT[:, pad:pad + n] = content_BN
        ids_BT[:, pad + n] = vocab + 1
        ids_BT[:, pad + n + 1:] = vocab + 2 + order_BN
        targets_BT = torch.full_like(ids_BT, IGNORE)
        targets_BT[:, pad + n + 1:] = content_BN.gather(1, order_BN)
        return Batch(ids_BT, targets_BT)
