"""In-context recall (MAD, Poli et al. 2024): a sequence of key-value pairs under a mapping drawn per sequence;
whenever a key comes back, the model must predict the value it had before (all repeats are scored, MAD's
multi-query form).

Ids: keys 0 .. K-1, values K .. K+V-1 (vocab = K + V, split in half), noise tokens after them (noisy recall)."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field

from .base import IGNORE, Batch, SyntheticTask, TaskOptions, need


class InContextRecallOptions(TaskOptions):
    vocab: Annotated[int, Field(ge=4, description="keys + values, equally split")] = 32


def recall_batch(gen: torch.Generator, batch_size: int, seq_len: int, n_keys: int, n_values: int,
                 noise_vocab: int = 0, frac_noise: float = 0.0) -> Batch:
    """Pairs (key, value) with value = map[key] per sequence; with probability `frac_noise` a pair slot holds two
    noise tokens instead. Targets: at a key that appeared before, its value (the next input token)."""
    n = seq_len // 2
    keys_BN = torch.randint(0, n_keys, (batch_size, n), generator=gen)
    map_BK = torch.randint(n_keys, n_keys + n_values, (batch_size, n_keys), generator=gen)
    values_BN = map_BK.gather(1, keys_BN)
    noise_BN = torch.rand(batch_size, n, generator=gen) < frac_noise
    noise_BN2 = torch.randint(n_keys + n_values, n_keys + n_values + max(noise_vocab, 1), (batch_size, n, 2),
                              generator=gen)
    pairs_BN2 = torch.where(noise_BN[..., None], noise_BN2, torch.stack([keys_BN, values_BN], dim=-1))
    # a key is "seen" if an earlier non-noise slot holds the same key
    same_BNN = (keys_BN[:, :, None] == keys_BN[:, None, :]) & ~noise_BN[:, None, :]
    seen_BN = (same_BNN & torch.ones(n, n, dtype=torch.bool).tril(-1)).any(-1) & ~noise_BN
    ids_BT = torch.zeros(batch_size, seq_len, dtype=torch.long)
    ids_BT[:, :2 * n] = pairs_BN2.reshape(batch_size, 2 * n)
    targets_BT = torch.full_like(ids_BT, IGNORE)
    targets_BT[:, 0:2 * n:2] = torch.where(seen_BN, values_BN, IGNORE)
    return Batch(ids_BT, targets_BT)


class InContextRecall(SyntheticTask):
    name = "in_context_recall"
    Options = InContextRecallOptions
    description = "in-context recall (MAD): recall a repeated key's value from earlier in the sequence"

    def __init__(self, options: InContextRecallOptions, seq_len: int, seed: int):
        super().__init__(options, seq_len, seed)
        need(self.name, seq_len >= 4, f"seq_len {seq_len} holds no repeated pair: needs >= 4")
        self.n_keys = options.vocab // 2
        self.n_values = options.vocab - self.n_keys

    @property
    def vocab_size(self) -> int:
        return self.options.vocab

    def sample(self, gen: torch.Generator, batch_size: int) -> Batch:
        return recall_batch(gen, batch_size, self.seq_len, self.n_keys, self.n_values)
