"""Multi-query associative recall (Zoology, Arora et al. 2023): key-value pairs, then the keys again at
power-law-distributed gaps; the model must name each queried key's value.

Layout (Zoology's): ids 1 .. vocab/2-1 are keys, vocab/2 .. vocab-1 values, 0 fills the query region. The
context is k1 v1 k2 v2 ... kn vn; a query is a key alone, and its target is that key's value."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, distinct, need


class MqarOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=4, description="keys + values, equally split")] = 256
    n_pairs: Annotated[int, Field(ge=1, description="key-value pairs per sequence (each queried once)")] = 8
    power_a: Annotated[float, Field(gt=0, le=1, description="query gaps: p(gap g) ~ g^(a-1)")] = 0.01


class Mqar(SyntheticTask):
    name = "mqar"
    Options = MqarOptions
    description = "multi-query associative recall (Zoology): recall each queried key's value"

    def __init__(self, options: MqarOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        n, half = options.n_pairs, options.vocab // 2
        need(self.name, n <= half - 1, f"n_pairs {n} needs distinct keys: at most vocab/2 - 1 = {half - 1}")
        self.space = (seq_len - 2 * n) // 2  # query slots: every other position after the context
        need(self.name, self.space >= n, f"seq_len {seq_len} is too short for {n} pairs and {n} queries: needs "
                                          f">= {4 * n}")
        gaps = torch.arange(1, self.space + 1, dtype=torch.float64)
        self.gap_p = options.power_a * gaps ** (options.power_a - 1)

    @property
    def vocab_size(self) -> int:
        return self.options.vocab

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        n, half, ctx = self.options.n_pairs, self.options.vocab // 2, 2 * self.options.n_pairs
        keys_BN = distinct(gen, batch_size, half - 1, n, offset=1)
        values_BN = torch.randint(half, self.options.vocab, (batch_size, n), generator=gen)
        ids_BT = torch.zeros(batch_size, self.seq_len, dtype=torch.long)
        ids_BT[:, 0:ctx:2], ids_BT[:, 1:ctx:2] = keys_BN, values_BN
        slots_BN = torch.multinomial(self.gap_p.expand(batch_size, -1), n, replacement=False, generator=gen)
        query_pos_BN = ctx + 2 * slots_BN
        ids_BT.scatter_(1, query_pos_BN, keys_BN)
        targets_BT = torch.full_like(ids_BT, IGNORE)
        targets_BT.scatter_(1, query_pos_BN, values_BN)
        return Batch(ids_BT, targets_BT)
