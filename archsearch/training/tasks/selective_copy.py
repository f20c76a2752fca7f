"""Selective copying (MAD; Gu & Dao 2023): `n_copy` content tokens scattered among blanks, then a copy token; from
there the model must emit the content tokens in order while reading only blanks.

Ids: content 0 .. vocab-1, blank = vocab, copy = vocab + 1."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, distinct, need


class SelectiveCopyOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=2, description="content tokens")] = 16
    n_copy: Annotated[int, Field(ge=1, description="content tokens to copy, scattered among blanks")] = 8


class SelectiveCopy(SyntheticTask):
    name = "selective_copy"
    Options = SelectiveCopyOptions
    description = "selective copying (MAD): copy the non-blank tokens, in order, after a copy token"

    def __init__(self, options: SelectiveCopyOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        n = options.n_copy
        self.region = seq_len - n - 1  # where the content tokens are scattered
        need(self.name, self.region >= n + 1, f"seq_len {seq_len} is too short to scatter and copy {n} tokens: "
                                              f"needs >= {2 * n + 2}")

    @property
    def vocab_size(self) -> int:
        return self.options.vocab + 2

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        n, vocab = self.options.n_copy, self.options.vocab
        content_BN = torch.randint(0, vocab, (batch_size, n), generator=gen)
        where_BN = distinct(gen, batch_size, self.region, n).sort(dim=1).values
        ids_BT = torch.full((batch_size, self.seq_len), vocab, dtype=torch.long)
        ids_BT.scatter_(1, where_BN, content_BN)
        ids_BT[:, self.region] = vocab + 1
        targets_BT = torch.full_like(ids_BT, IGNORE)
        targets_BT[:, self.region:self.region + n] = content_BN  # the copy token predicts the first one
        return Batch(ids_BT, targets_BT)
