"""Memorisation (MAD): a key-value table fixed for the whole task (drawn from `map_seed`, the same for every run,
so the facts do not depend on the training seed); sequences ask keys, each followed by an insert token at which
the model must produce the key's value. Nothing in the context helps: the table has to live in the weights.

Ids: keys 0 .. n_keys-1, values n_keys .. 2 n_keys-1, insert = 2 n_keys."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, need


class MemorizationOptions(TaskOptions):
    n_keys: Annotated[int, Field(ge=1, description="entries of the fixed key -> value table")] = 64
    map_seed: Annotated[int, Field(description="seed of the table (the same facts whatever the training seed)")] = 12345


class Memorization(SyntheticTask):
    name = "memorization"
    Options = MemorizationOptions
    description = "memorisation (MAD): a fixed key -> value table learnt into the weights"

    def __init__(self, options: MemorizationOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        need(self.name, seq_len >= 2, f"seq_len {seq_len} holds no key and insert token: needs >= 2")
        n = options.n_keys
        table_gen = torch.Generator().manual_seed(options.map_seed)
        self.table = n + torch.randperm(n, generator=table_gen)  # key k -> value table[k]

    @property
    def vocab_size(self) -> int:
        return 2 * self.options.n_keys + 1

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        n_keys, pairs = self.options.n_keys, self.seq_len // 2
        keys_BN = torch.randint(0, n_keys, (batch_size, pairs), generator=gen)
        ids_BT = torch.full((batch_size, self.seq_len), 2 * n_keys, dtype=torch.long)
        ids_BT[:, 0:2 * pairs:2] = keys_BN
        targets_BT = torch.full_like(ids_BT, IGNORE)
        targets_BT[:, 1:2 * pairs:2] = self.table[keys_BN]
        return Batch(ids_BT, targets_BT)
